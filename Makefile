# engage: two commands do all the set-up on a fresh machine.
#   make demo   one full daily run on bundled sample sources
#   make test   the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export ENGAGE_HOME ?= $(CURDIR)/var

.PHONY: demo test install lint bench clean standalone

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/engage demo

test: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q

# The Airflow UI and scheduler on SQLite metadata under var/airflow
# (http://localhost:8080; the admin password is printed and kept in
# var/airflow/simple_auth_manager_passwords.json.generated).
standalone: $(BIN)/.installed
	mkdir -p $(ENGAGE_HOME)/airflow
	export PATH=$(CURDIR)/$(BIN):$$PATH AIRFLOW_HOME=$(ENGAGE_HOME)/airflow \
	AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags AIRFLOW__CORE__LOAD_EXAMPLES=False; \
	$(BIN)/airflow db migrate >/dev/null && \
	$(BIN)/airflow pools import config/airflow_pools.json && \
	$(BIN)/airflow standalone

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(BIN)/.installed
	$(BIN)/python -m bench

clean:
	rm -rf var test-artifacts .pytest_cache
