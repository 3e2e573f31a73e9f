# The two commands: `make run` (install, start the embedded database, migrate,
# load the sample company, serve) and `make test` (install, run every check).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install run test test-fast prereqs lint typecheck pytest node bench clean screenshots

$(STAMP): pyproject.toml
	@echo "==> creating virtual environment in $(VENV) with $(PYTHON)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "==> upgrading pip"
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "==> installing kb-mcp and its pinned dependencies (torch CPU build first; about a minute)"
	@$(BIN)/python -m pip install --progress-bar on "torch==2.13.0"
	@$(BIN)/python -m pip install --progress-bar on -e '.[dev]'
	@touch $(STAMP)
	@echo "==> installed"

install: $(STAMP)

run: $(STAMP)
	@echo "==> starting kb with the sample company (examples/kb.yaml); data in .kb/"
	KB_CONFIG=$${KB_CONFIG:-examples/kb.yaml} $(BIN)/kb serve --load-examples

lint: $(STAMP)
	@echo "==> ruff"
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@echo "==> import contracts"
	$(BIN)/lint-imports

typecheck: $(STAMP)
	@echo "==> mypy --strict"
	$(BIN)/mypy

node:
	@bash tests/node/install.sh

# The suite also needs npm, MariaDB and PostgreSQL on loopback: one line each, and stop early.
prereqs: $(STAMP)
	@echo "==> test prerequisites"
	@$(BIN)/python tests/check_prereqs.py $(PREREQ_ARGS)

pytest: $(STAMP) prereqs node
	@echo "==> pytest"
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

# A quick subset while developing: no Node clients, no long-running (slow) tests.
test-fast: PREREQ_ARGS = --no-node
test-fast: $(STAMP) prereqs
	@echo "==> pytest (fast subset: not slow, not node)"
	$(BIN)/python -m pytest -m "not slow and not node" $(PYTEST_ARGS)

# `make bench` lists the benchmarks; `make bench NAME=search_recall ARGS="--chunks 1000000"`
# runs one (each writes its section of docs/benchmarks.md). BENCH_ARGS is the older spelling.
# A PNG of each admin console page under docs/screenshots/ (a throwaway server and database;
# Playwright drives Debian's chromium, never a downloaded browser).
screenshots: $(STAMP)
	@echo "==> admin console screenshots into docs/screenshots/"
	$(BIN)/python -m tests.console.screenshots docs/screenshots

bench: $(STAMP)
	$(BIN)/python -m bench $(if $(NAME),$(NAME) $(ARGS),$(or $(BENCH_ARGS),--help))

clean:
	rm -rf $(VENV) .kb .mypy_cache .pytest_cache .ruff_cache
