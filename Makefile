# The two commands a newcomer needs: `make test` and `make up STACK=<stack>`.
# Both do all the set-up themselves: the virtualenv with pinned packages and the Pulumi CLI
# (built from Go modules once per machine, cached in ~/.cache/glmserve).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
STACK ?= dev
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` (0: one process). Each test file stays on one worker
# (--dist loadfile), so a file's module fixtures (the local Kubernetes control plane) start once;
# stand-ins listen on ports the OS picks and every e2e test has its own state, Pulumi home
# and project copy, so two workers never share anything.
PYTEST_WORKERS ?= 2

.PHONY: setup lock policy-pack pulumi engine-check k8s-test-cluster test up preview refresh destroy validate render plan bench pr-preview merge-up drift-report lint-workflows

setup: $(STAMP) pulumi

$(STAMP): requirements.lock pyproject.toml
	@echo "setup: virtualenv $(VENV) with pinned packages"
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install -q --disable-pip-version-check --require-hashes -r requirements.lock
	@$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

# requirements.lock from pyproject.toml, every file pinned by sha256 (scripts/lock; uv).
lock:
	@scripts/lock

pulumi:
	@scripts/install-pulumi >/dev/null

# The CrossGuard policy pack's own virtualenv (policy/PulumiPolicy.yaml: virtualenv .venv), never
# the project's: pulumi-policy pins protobuf 5, the project locks protobuf 6 (policy/requirements.in;
# scripts/lock resolves it into policy/requirements.txt with hashes). `make test` builds it once and
# again only when policy/requirements.txt changes (the stamp below).
POLICY_VENV := policy/.venv
policy-pack: $(POLICY_VENV)/.installed

$(POLICY_VENV)/.installed: policy/requirements.txt
	@echo "policy-pack: virtualenv $(POLICY_VENV) for pulumi preview --policy-pack policy"
	@test -x $(POLICY_VENV)/bin/python || $(PYTHON) -m venv $(POLICY_VENV)
	@$(POLICY_VENV)/bin/pip install -q --disable-pip-version-check --require-hashes -r policy/requirements.txt
	@$(POLICY_VENV)/bin/pip check -q 2>/dev/null || $(POLICY_VENV)/bin/pip check
	@touch $@

engine-check: $(STAMP)
	@if [ -x scripts/install-engine-check ]; then scripts/install-engine-check; fi

# kube-apiserver, kube-controller-manager and kube-scheduler built from Go modules for the
# Kubernetes provider's end-to-end tests (~14 min cold, cached in ~/.cache/glmserve/k8s).
k8s-test-cluster:
	@scripts/install-k8s-test-cluster >/dev/null

test: setup policy-pack engine-check k8s-test-cluster
	$(VENV)/bin/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

validate render plan: $(STAMP)
	$(VENV)/bin/glmserve $@ --stack $(STACK)

preview up refresh destroy: setup
	$(VENV)/bin/glmserve $@ --stack $(STACK)

bench: setup
	$(VENV)/bin/python bench/plan_bench.py

# The GitOps steps, exactly as the workflows in .github/workflows run them (docs/gitops.md).
pr-preview: setup
	scripts/gitops/pr-preview --base $${BASE:-origin/main}

merge-up: setup
	scripts/gitops/merge-up --base $${BASE:-HEAD~1}

drift-report: setup
	scripts/gitops/drift-report

lint-workflows:
	scripts/gitops/actionlint
