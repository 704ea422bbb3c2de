# make demo: create .venv, install driftline, run the embedded end-to-end demo.
# make test: install the test extras, run the whole test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

# fakesnow, the Snowflake emulator the Snowflake tests run against (.ci/services/fakesnow.sh
# starts it), in a venv of its own: it pins duckdb 2.0 and sqlglot 30.22, which driftline's
# pins exclude, and it imports a module of snowflake-connector-python that 5.2 no longer has.
FAKESNOW_VENV := .venv-fakesnow

$(FAKESNOW_VENV)/.installed:
	$(PYTHON) -m venv $(FAKESNOW_VENV)
	$(FAKESNOW_VENV)/bin/python -m pip install -q 'fakesnow[server]==0.12.1' 'snowflake-connector-python==4.8.1' \
		'duckdb==2.0.1' 'sqlglot==30.22.0' 'starlette==1.10.0' 'uvicorn==0.55.0'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/driftline demo --dir demo

test: $(VENV)/.test-installed
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) $(FAKESNOW_VENV) demo report.html artifacts .pytest_cache
