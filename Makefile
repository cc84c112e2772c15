# Maillon — the two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEPLOY ?= var

.PHONY: run test lint install install-test postgres dovecot benchmark clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

## make run: install, create ./var on first use (with a first admin account), start everything
run: install
	@test -f $(DEPLOY)/maillon.yaml || $(BIN)/maillon init --dir $(DEPLOY) --server-name localhost
	$(BIN)/maillon up --dir $(DEPLOY) --first-account admin

postgres:
	@scripts/ensure-postgres.sh

dovecot:
	@scripts/ensure-dovecot.sh

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## make test: install test deps, make sure PostgreSQL runs, lint, run the whole suite
test: install-test postgres dovecot lint
	$(BIN)/pytest

benchmark: install-test
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
