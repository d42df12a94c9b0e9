# make run   : set up .venv and start the dashboard (demo mode without an API key)
# make test  : set up .venv with the dev requirements and run every test (browser tests too)
# make bench : loader and page-render benchmarks against the simulator over HTTP
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8501

.PHONY: install install-dev run test lint bench chromium clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Stamp files make a second `make install` a no-op until a requirements file changes.
$(VENV)/.stamp-runtime: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements.txt
	@touch $@

$(VENV)/.stamp-dev: requirements-dev.txt $(VENV)/.stamp-runtime
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	@touch $@

install: $(VENV)/.stamp-runtime

install-dev: $(VENV)/.stamp-dev

run: install
	$(BIN)/python -m streamlit run app.py --server.port $(PORT)

# Browser tests drive Debian's Chromium (never a downloaded browser).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: sudo apt-get install chromium" >&2; exit 1; fi; }

test: install-dev chromium
	$(BIN)/python -m ruff check .
	$(BIN)/python -m pytest

lint: install-dev
	$(BIN)/python -m ruff check .

bench: install-dev
	$(BIN)/python -m benchmarks.bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-output bench-output
