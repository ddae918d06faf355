# Two commands do all the set-up:  `make run`  (the relay, locally)  and  `make test`  (everything).
# Both create .venv on first use; `make test` also installs the Firestore emulator (npm).

VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 8080
EMULATOR := tests/emulator/node_modules/.installed

.PHONY: help run sandbox check test lint format bench faults clean
.DEFAULT_GOAL := help

## This list: each target and what it does.
help:
	@awk '/^## /{doc = doc (doc ? "\n             " : "") substr($$0, 4); next} \
	  /^[a-z]+:/{if (doc) printf "make %-8s%s\n", substr($$1, 1, length($$1) - 1), doc} \
	  {doc = ""}' $(MAKEFILE_LIST) | sed 's/$$(PORT)/$(PORT)/g'

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(EMULATOR): tests/emulator/package-lock.json
	npm ci --prefix tests/emulator --no-audit --no-fund --loglevel=error
	touch $@

## The relay on http://127.0.0.1:$(PORT), serving relay.yaml with the example secrets
## (examples/local.env). Without REVYL_API_KEY in your environment it runs in dry-run.
run: $(VENV)/.installed
	@$(PY) -c 'import socket; socket.create_server(("127.0.0.1", $(PORT)))' 2>/dev/null || { \
	  echo "make run: port $(PORT) is in use (another relay?); pick another: PORT=$$(($(PORT) + 1)) make run" >&2; \
	  exit 1; }
	@echo "make run: the relay on http://127.0.0.1:$(PORT): POST a webhook to /<source> (e.g. /eas), GET /healthz; Ctrl-C stops it"
	@set -a && . examples/local.env && set +a && \
	$(PY) -m functions_framework --target relay_webhook --source main.py --host 127.0.0.1 --port $(PORT)

## Every source working on loopback, without any account (docs/sandbox.md): the relay on
## http://127.0.0.1:$(PORT) with fakes of Revyl and of each build system, and the
## `python -m relay send` command that posts each source's sample. Ctrl-C stops it all.
sandbox: $(VENV)/.installed
	@$(PY) -c 'import socket; socket.create_server(("127.0.0.1", $(PORT)))' 2>/dev/null || { \
	  echo "make sandbox: port $(PORT) is in use (another relay?); pick another: PORT=$$(($(PORT) + 1)) make sandbox" >&2; \
	  exit 1; }
	@$(PY) -m relay sandbox --port $(PORT)

## Check relay.yaml as `make run` serves it, with examples/local.env: python -m relay check
## --secrets (exit 1 if the relay would not start or a secret cannot be read).
check: $(VENV)/.installed
	@set -a && . examples/local.env && set +a && $(PY) -m relay check --secrets

## Lint and type-check, then the whole test suite (unit, end-to-end, Firestore emulator, faults,
## API schema), one pytest-xdist worker per CPU.
test: $(VENV)/.installed $(EMULATOR)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -n auto

## The fault suite alone: every failure scenario, a table of answers and runs per target.
faults: $(VENV)/.installed $(EMULATOR)
	$(PY) -m tests.faults

## The benchmark (about two minutes): progress, a table, and bench/results/latest.json;
## exit 3 if a target is missed (`.venv/bin/python -m bench --report-only` never does).
bench: $(VENV)/.installed $(EMULATOR)
	$(PY) -m bench

## Lint and type-check only: ruff and strict mypy.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## Format the code and apply ruff's safe fixes.
format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## Remove .venv, the emulator's node_modules and the caches.
clean:
	rm -rf $(VENV) tests/emulator/node_modules .pytest_cache .ruff_cache
