# Maillon — the two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEPLOY ?= var

.PHONY: run test announce lint install install-test postgres dovecot nginx browser benchmark clean

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
	@if test -f $(DEPLOY)/maillon.yaml; then \
		$(BIN)/maillon up --dir $(DEPLOY) --first-account admin; \
	else \
		$(BIN)/maillon init --dir $(DEPLOY) --server-name localhost --up --first-account admin; \
	fi

postgres:
	@scripts/ensure-postgres.sh

dovecot:
	@scripts/ensure-dovecot.sh

## nginx and Redis (Debian) for the Synapse worker deployment (maillon init --workers)
nginx:
	@scripts/ensure-nginx.sh

## Chromium (Debian), Node, pdftotext (poppler-utils) and tests/js's packages (npm ci) for the real-client tests
browser:
	@scripts/ensure-browser.sh

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## make test: install test deps, PostgreSQL, Dovecot, Chromium and Node if missing, lint, run the whole suite
test: announce install-test postgres dovecot nginx browser lint
	$(BIN)/pytest

announce:
	@echo "make test : installe au besoin l'environnement Python (.venv, paquets PyPI),"
	@echo "  PostgreSQL, Dovecot, nginx, Redis, Chromium et Node (apt-get), les paquets npm de tests/js (npm ci),"
	@echo "  puis lance ruff, mypy, lint-imports et pytest."
	@echo "  Les tests démarrent de vrais serveurs (Synapse, PostgreSQL privé, SMTP/IMAP) :"
	@echo "  comptez 2 à 5 minutes d'installation la première fois, puis environ 25 minutes de tests (2 cœurs)."

benchmark: install-test
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
