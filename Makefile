# BinPay: `make run` starts the whole system, `make test` runs every test. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV_PYTHON := .venv/bin/python

.PHONY: help venv lock run test lint check-invariants chaos bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

venv: ## create .venv and install every pinned requirement
	@bash devtools/bootstrap.sh

lock: venv ## re-lock every requirements file with hashes from its .in (LOCK_ARGS="--upgrade-package X")
	@$(VENV_PYTHON) devtools/lock_requirements.py $(LOCK_ARGS)

# Each target that needs more than Python checks its system prerequisites first (devtools/prerequisites.sh).
run: ## run gateway, processor, initiator and emulators in the foreground (Ctrl-C stops all)
	@bash devtools/prerequisites.sh run
	@bash devtools/bootstrap.sh
	@bash devtools/run.sh

test: ## lint, then every suite against the real emulators, PostgreSQL and processes
	@bash devtools/prerequisites.sh test
	@bash devtools/bootstrap.sh
	@$(VENV_PYTHON) devtools/run_tests.py

lint: ## validate Dockerfiles, compose, k8s, Cloud Run, Terraform, workflows, scripts, Python
	@bash devtools/prerequisites.sh lint
	@bash devtools/bootstrap.sh
	@bash devtools/lint/install-tools.sh && bash devtools/lint/lint.sh

check-invariants: venv ## check the saga invariants of a running `make run` system
	@$(VENV_PYTHON) devtools/check_invariants.py

chaos: ## the fault-injection suite on PostgreSQL: >= 2,000 payments, every scenario of tests/chaos/scenarios.py, pull and push
	@bash devtools/prerequisites.sh chaos
	@bash devtools/bootstrap.sh
	@$(VENV_PYTHON) -m pytest -p no:cacheprovider tests/chaos --chaos-payments=2000 -s

bench: ## benchmark: BinPay's figures next to the same run's ceilings (BENCH_ARGS="--payments 5000 ...")
	@bash devtools/prerequisites.sh bench
	@bash devtools/bootstrap.sh
	@$(VENV_PYTHON) bench/bench.py $(BENCH_ARGS)

clean: ## remove the virtualenv, local state and caches
	rm -rf .venv .run .tools .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
