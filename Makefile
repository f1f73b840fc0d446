# Two set-up commands: `make run` (the app) and `make test` (the test suite).
# Both create .venv when missing and install the project into it first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install browser bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/mmagent serve

# The UI tests drive Debian's Chromium (never a downloaded browser); install it when missing.
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; \
	  else echo "note: install Debian's chromium (sudo apt-get install chromium) to run the browser tests; they are skipped without it"; fi; }

test: $(STAMP) browser
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) data .pytest_cache
