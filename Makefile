# Two commands do all the set-up:  `make run`  (the relay, locally)  and  `make test`  (everything).
# Both create .venv on first use; `make test` also installs the Firestore emulator (npm).

VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 8080
EMULATOR := tests/emulator/node_modules/.installed

.PHONY: run test lint format bench faults clean

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
	set -a && . examples/local.env && set +a && \
	$(PY) -m functions_framework --target relay_webhook --source main.py --host 127.0.0.1 --port $(PORT)

## Lint and type-check, then the whole test suite (unit, end-to-end, Firestore emulator, faults,
## API schema).
test: $(VENV)/.installed $(EMULATOR)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m pytest

## The fault suite alone: every failure scenario, a table of answers and runs per target.
faults: $(VENV)/.installed $(EMULATOR)
	$(PY) -m tests.faults

## The benchmark (about two minutes): a table, and bench/results/latest.json.
bench: $(VENV)/.installed
	$(PY) -m bench

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) tests/emulator/node_modules .pytest_cache .ruff_cache
