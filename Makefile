# make run   : set up .venv and start the dashboard (demo mode without an API key)
# make test  : set up .venv with the dev requirements and run every test (browser tests too)
# make test-fast : every test but the browser suite (the inner loop)
# make serve : check the hosting configuration, then serve for a team (see deploy/README.md)
# make bench : loader and page-render benchmarks against the simulator over HTTP
# make soak  : the chaos soak of the whole hosted deployment (about 15 minutes)
PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PORT    ?= 8501
ADDRESS ?= 127.0.0.1

.PHONY: install install-dev run serve sync db-upgrade test test-fast lint bench soak chromium redis-server postgresql clean

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

# Loopback only: a dashboard on this machine needs no sign-in. To share it, use `make serve`.
run: install
	$(BIN)/python -m streamlit run app.py --server.port $(PORT) --server.address $(ADDRESS)

# Hosted: address and port from FLUX_ADDRESS / FLUX_PORT; refuses to start on an unsafe setup.
serve: install
	$(BIN)/python -m flux_dashboard.serve

# The sync worker: keeps the last 30 days of every sensor warm in the cache (a second
# process beside `make serve`; same FLUX_CACHE_DIR and FLUX_REDIS_URL).
sync: install
	$(BIN)/python -m flux_dashboard sync

# Browser tests drive Debian's Chromium (never a downloaded browser).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: sudo apt-get install chromium" >&2; exit 1; fi; }

# The shared-state tests start Debian's redis-server on a free loopback port.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; \
	  else echo "redis-server is missing: sudo apt-get install redis-server" >&2; exit 1; fi; }

# The findings store's tests run on SQLite and on Debian's PostgreSQL, a throwaway cluster
# the tests start themselves (tests/kit/services.py).
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; \
	  else echo "PostgreSQL is missing: sudo apt-get install postgresql" >&2; exit 1; fi; }

# The findings database's migrations (the app and the worker also apply them at start-up).
db-upgrade: install
	$(BIN)/python -m flux_dashboard db upgrade

# Every suite pins the app's clock to one instant (tests/kit/clock.py); choose another
# with FLUX_TEST_NOW, e.g. `make test FLUX_TEST_NOW=2026-10-25T22:59:50Z`.
# Test files run on TEST_WORKERS processes (pytest-xdist; one file stays on one worker,
# so its servers and shared runs are made once); the 15 slowest tests are listed last.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=15

test: install-dev chromium redis-server postgresql
	$(BIN)/python -m ruff check .
	$(PYTEST)

test-fast: install-dev redis-server postgresql
	$(BIN)/python -m ruff check .
	$(PYTEST) --ignore=tests/browser

lint: install-dev
	$(BIN)/python -m ruff check .

bench: install-dev redis-server postgresql
	$(BIN)/python -m benchmarks.bench

# Two replicas, the worker, Redis and PostgreSQL for 10 minutes while the API fails
# and every process is restarted once; fails when a target is missed (README).
SOAK_ARGS ?=
soak: install-dev redis-server postgresql
	$(BIN)/python -m benchmarks.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-output bench-output
