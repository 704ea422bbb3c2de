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

demo: $(VENV)/.installed
	$(BIN)/driftline demo --dir demo

test: $(VENV)/.test-installed
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) demo report.html artifacts .pytest_cache
