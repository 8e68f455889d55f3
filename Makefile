# Everyday commands. `make` alone lists them.

COMPOSE ?= docker compose
# Published ports listen here (compose.yml); see stack/README.md to open them up.
SANDBOX_BIND ?= 127.0.0.1
# Where the reload requests go: the bind address, or loopback when bound to all.
SANDBOX_HOST ?= $(if $(filter 0.0.0.0,$(SANDBOX_BIND)),127.0.0.1,$(SANDBOX_BIND))
GRAFANA_ADMIN_PASSWORD ?= dice-sandbox-admin

.DEFAULT_GOAL := help
.PHONY: help stack up traffic ps logs reload down clean verify

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

stack: ## Start the observability stack alone (Prometheus, Loki, Tempo, Alloy, Grafana)
	$(COMPOSE) -f stack/compose.yml up -d

up: ## Build and start the dice roller with the whole stack
	$(COMPOSE) up -d --build

traffic: ## Run the traffic generator once, in a container, against the dice roller
	$(COMPOSE) --profile traffic run --rm --build traffic-gen

ps: ## Show the containers and their health
	$(COMPOSE) ps

logs: ## Follow the logs of every container
	$(COMPOSE) logs -f --tail=50

reload: ## Apply config changes without restarting (Prometheus, Alloy, Grafana provisioning)
	curl -fsS -X POST http://$(SANDBOX_HOST):9090/-/reload
	curl -fsS -X POST http://$(SANDBOX_HOST):12345/-/reload
	curl -fsS -X POST -u admin:$(GRAFANA_ADMIN_PASSWORD) \
		http://$(SANDBOX_HOST):3000/api/admin/provisioning/datasources/reload
	curl -fsS -X POST -u admin:$(GRAFANA_ADMIN_PASSWORD) \
		http://$(SANDBOX_HOST):3000/api/admin/provisioning/dashboards/reload
	@echo

down: ## Stop and remove the containers (data volumes are kept)
	$(COMPOSE) --profile traffic down

clean: ## Stop everything and delete the stored metrics, logs, traces and Grafana state
	$(COMPOSE) --profile traffic down -v

verify: ## Tick the spec's checklist against the running stack (ARGS='--with-traffic --json ...')
	python3 tasks.py verify $(ARGS)
