# Two set-up commands: `make run` (the app) and `make test` (the test suite).
# Both create .venv when missing and install the project into it first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/mmagent serve

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) data .pytest_cache
