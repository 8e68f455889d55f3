# Kept for the habit: each target runs the `python3 tasks.py` command of its name, the one
# way in (README.md). `make` alone lists them; COMPOSE, SANDBOX_BIND, ARGS and NAME work
# as before (`make drill NAME=error-spike` is `python3 tasks.py drill error-spike`).

COMPOSE_TARGETS := up stack traffic ps logs reload grafana-password down clean
export COMPOSE SANDBOX_BIND

.DEFAULT_GOAL := help
.PHONY: help verify drill $(COMPOSE_TARGETS)

help:
	@python3 tasks.py help

$(COMPOSE_TARGETS):
	@python3 tasks.py compose $@

verify:
	@python3 tasks.py verify $(ARGS)

drill:
	@python3 tasks.py drill $(if $(NAME),$(NAME),--list) $(ARGS)
