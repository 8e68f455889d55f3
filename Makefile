# Everyday commands. `make` alone lists them.

COMPOSE ?= docker compose
# Published ports listen here (compose.yml); see stack/README.md to open them up.
SANDBOX_BIND ?= 127.0.0.1
# Where the reload requests go: the bind address, or loopback when bound to all.
SANDBOX_HOST ?= $(if $(filter 0.0.0.0,$(SANDBOX_BIND)),127.0.0.1,$(SANDBOX_BIND))
# Grafana's admin password, as grafana-init wrote it (stack/compose.yml): the
# GRAFANA_ADMIN_PASSWORD the stack was first started with, or a random one.
GRAFANA_PASSWORD_FILE := /var/lib/grafana/admin-password
GRAFANA_PASSWORD = $(COMPOSE) exec -T grafana cat $(GRAFANA_PASSWORD_FILE)

.DEFAULT_GOAL := help
.PHONY: help stack up traffic ps logs reload grafana-password down clean verify drill

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

stack: ## Start the observability stack alone (Prometheus, Loki, Tempo, Alloy, Grafana, Alertmanager, alert-receiver)
	$(COMPOSE) -f stack/compose.yml up -d --build

up: ## Build and start the dice roller with the whole stack
	$(COMPOSE) up -d --build

traffic: ## Run the traffic generator once, in a container, against the dice roller
	$(COMPOSE) --profile traffic run --rm --build traffic-gen

ps: ## Show the containers and their health
	$(COMPOSE) ps

logs: ## Follow the logs of every container
	$(COMPOSE) logs -f --tail=50

reload: ## Apply config changes without restarting (Prometheus, Alloy, Alertmanager, Grafana provisioning)
	curl -fsS -X POST http://$(SANDBOX_HOST):9090/-/reload
	curl -fsS -X POST http://$(SANDBOX_HOST):12345/-/reload
	curl -fsS -X POST http://$(SANDBOX_HOST):9093/-/reload
	password="$$($(GRAFANA_PASSWORD))" && \
	curl -fsS -X POST -u "admin:$$password" \
		http://$(SANDBOX_HOST):3000/api/admin/provisioning/datasources/reload && \
	curl -fsS -X POST -u "admin:$$password" \
		http://$(SANDBOX_HOST):3000/api/admin/provisioning/dashboards/reload
	@echo

grafana-password: ## Print Grafana's admin password (user admin; anonymous access needs none)
	@$(GRAFANA_PASSWORD) && echo

down: ## Stop and remove the containers (data volumes are kept)
	$(COMPOSE) --profile traffic down

clean: ## Stop everything and delete the stored metrics, logs, traces and Grafana state
	$(COMPOSE) --profile traffic down -v

verify: ## Tick the checklist (docs/checklist.md) against the running stack (ARGS='--with-traffic --json ...')
	python3 tasks.py verify $(ARGS)

drill: ## Break the service on purpose and watch each signal (NAME=error-spike ARGS=...; no NAME lists them)
	python3 tasks.py drill $(if $(NAME),$(NAME),--list) $(ARGS)
