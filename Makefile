# `make demo` and `make test` are the two documented entry points; both run `setup` first, which is
# idempotent, so they work on a fresh clone on a fresh machine and every time after.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# uv may have been installed by `python3 -m pip` into a bin dir that is not on PATH.
UV = $(shell command -v uv 2>/dev/null || echo python3 -m uv)
# --frozen: the lock file is the truth, never rewritten by a build; --all-packages matches `setup`.
RUN = $(UV) run --frozen --all-packages
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL = DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends
MYPY_PATHS = $(wildcard contracts/src libs/*/src services/*/src cli/src analytics/src bench/src)

.PHONY: help setup test check-deploy demo bench bench-quick infra-up infra-down clean distclean

help:
	@echo "make demo        set up, then run the demo"
	@echo "make test        set up, then lint, type-check and run the whole test suite"
	@echo "make bench-quick every benchmark against its raw baseline, small sizes (< 10 min)"
	@echo "make bench       the same at full size; both write bench/results/<date>-<host>.{json,md}"
	@echo "make check-deploy  validate Dockerfiles, compose and Kubernetes manifests offline"
	@echo "make setup       install tools, the virtualenv and the Kafka jars (idempotent)"
	@echo "make infra-up    start local Kafka + PostgreSQL in the background"
	@echo "make infra-down  stop them"
	@echo "make clean       stop infra, remove its state and tool caches (keeps .venv and downloads)"
	@echo "make distclean   clean, plus .venv and the download cache"

setup:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || { \
	  echo "installing uv"; python3 -m pip install --quiet uv; }
	@pg_bindir="$$(pg_config --bindir 2>/dev/null || true)"; \
	if [ ! -x "$$pg_bindir/initdb" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  echo "installing PostgreSQL"; $(SUDO) apt-get update -qq && $(APT_INSTALL) postgresql; fi
	@command -v java >/dev/null 2>&1 || { \
	  echo "installing Java 17"; $(SUDO) apt-get update -qq && $(APT_INSTALL) openjdk-17-jre-headless; }
	@command -v mvn >/dev/null 2>&1 || { \
	  echo "installing Maven"; $(SUDO) apt-get update -qq && $(APT_INSTALL) maven; }
	$(UV) sync --all-packages --frozen
	$(RUN) shopstream infra fetch

test: setup
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy $(MYPY_PATHS)
	$(RUN) python -m shopstream_contracts.generate --check
	$(RUN) pytest

# The deploy folder alone (images, compose, kustomize overlays, topic sets); `make test` runs it too.
check-deploy: setup
	$(RUN) pytest tests/deploy

demo: setup
	$(RUN) shopstream demo

bench: setup
	$(RUN) shopstream-bench run --profile full

bench-quick: setup
	$(RUN) shopstream-bench run --profile quick

infra-up: setup
	$(RUN) shopstream infra up

# No setup here: stopping must work (and be a no-op) even on a checkout that was never set up.
infra-down:
	@if [ -x .venv/bin/shopstream ]; then .venv/bin/shopstream infra down; else echo "nothing to stop"; fi

clean:
	@if [ -x .venv/bin/shopstream ]; then .venv/bin/shopstream infra down --purge; fi
	rm -rf .local .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -path ./.venv -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf .venv .cache
