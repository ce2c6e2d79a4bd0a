# The two commands a newcomer needs: `make test` and `make up STACK=<stack>`.
# Both do all the set-up themselves: the virtualenv with pinned packages and the Pulumi CLI
# (built from Go modules once per machine, cached in ~/.cache/glmserve).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
STACK ?= dev
PYTEST_ARGS ?=

.PHONY: setup pulumi engine-check test up preview refresh destroy validate render plan bench

setup: $(STAMP) pulumi

$(STAMP): requirements.lock pyproject.toml
	@echo "setup: virtualenv $(VENV) with pinned packages"
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.lock
	@$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

pulumi:
	@scripts/install-pulumi >/dev/null

engine-check: $(STAMP)
	@if [ -x scripts/install-engine-check ]; then scripts/install-engine-check; fi

test: setup engine-check
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

validate render plan: $(STAMP)
	$(VENV)/bin/glmserve $@ --stack $(STACK)

preview up refresh destroy: setup
	$(VENV)/bin/glmserve $@ --stack $(STACK)

bench: setup
	$(VENV)/bin/python bench/plan_bench.py
