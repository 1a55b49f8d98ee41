# Lantern: `make run` opens the console on its embedded defaults; `make test` runs every test.
# Big things (the llama.cpp wheel, the model, the sandbox binaries) are cached outside the repo
# under ~/.cache/lantern, so only the first run on a machine is slow.

SHELL := /bin/bash
export LITELLM_LOCAL_MODEL_COST_MAP := True
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF
export UV_LINK_MODE ?= copy
# uv from PATH, else as a module of the machine's Python (installed there on first use).
UV := $(or $(shell command -v uv 2>/dev/null),python3 -m uv)
PY := .venv/bin/python

.PHONY: uv setup llama model sandbox monitoring postgres chromium run test bench help
help:
	@echo "make run   - set up and open the console (local model, sandbox cluster)"
	@echo "make test  - set up and run the whole test suite"

uv:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet 'uv>=0.9'

WHEELS := $(HOME)/.cache/lantern/wheels
LLAMA_VERSION := 0.3.36

setup: uv
	$(UV) sync --frozen --inexact
	@$(MAKE) --no-print-directory llama

# llama-cpp-python: build the wheel once per machine (portable: no -march=native), then install it.
llama: uv
	@if ! $(PY) -c "import llama_cpp" 2>/dev/null; then \
	  if ! ls $(WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1; then \
	    echo "building llama-cpp-python $(LLAMA_VERSION) (once per machine; 7 to 28 minutes on 2 cores)"; \
	    mkdir -p $(WHEELS) && CMAKE_ARGS="-DGGML_NATIVE=OFF" python3 -m pip wheel --quiet --no-deps --no-cache-dir -w $(WHEELS) llama-cpp-python==$(LLAMA_VERSION) || exit 1; \
	  fi; \
	  $(UV) pip install --quiet --python $(PY) --no-deps $(WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl; \
	fi

model: setup
	$(PY) -m console.cli model install

sandbox: setup monitoring
	$(PY) -m console.cli sandbox build

# Prometheus and Alertmanager for the sandbox's metrics and alerts: Debian's packages, installed when
# missing. The sandbox runs its own on loopback ports; nothing is left running system-wide (a
# policy-rc.d keeps the packages' postinst from starting their services, which are disabled at boot).
MONITORING_PKGS := prometheus prometheus-alertmanager
monitoring:
	@if ! command -v prometheus >/dev/null 2>&1 || ! command -v prometheus-alertmanager >/dev/null 2>&1; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "the sandbox's metrics and alerts stay off until Prometheus and Alertmanager are installed:"; \
	    echo "  sudo apt-get install --no-install-recommends $(MONITORING_PKGS) && sudo systemctl disable --now $(MONITORING_PKGS)"; \
	    exit 0; \
	  fi; \
	  echo "installing Prometheus and Alertmanager (Debian's $(MONITORING_PKGS)) for the sandbox"; \
	  export DEBIAN_FRONTEND=noninteractive; rcd=/usr/sbin/policy-rc.d; own=; \
	  if [ ! -e $$rcd ]; then printf '#!/bin/sh\nexit 101\n' > $$rcd && chmod 755 $$rcd && own=1; fi; \
	  (apt-get install -y -qq --no-install-recommends $(MONITORING_PKGS) >/dev/null 2>&1 || \
	   (apt-get update -qq && apt-get install -y -qq --no-install-recommends $(MONITORING_PKGS) >/dev/null)); rc=$$?; \
	  if [ -n "$$own" ]; then rm -f $$rcd; fi; \
	  for s in $(MONITORING_PKGS); do \
	    if [ -d /run/systemd/system ]; then systemctl disable --now $$s >/dev/null 2>&1; \
	    elif command -v deb-systemd-helper >/dev/null 2>&1; then deb-systemd-helper disable $$s.service >/dev/null 2>&1; fi; \
	    if [ -x /etc/init.d/$$s ]; then update-rc.d $$s disable >/dev/null 2>&1; fi; \
	  done; \
	  exit $$rc; \
	fi

run: model sandbox
	$(PY) -m console.cli

# PostgreSQL's binaries for the team-store tests (tests.storage.pgserver starts its own server in a
# temporary folder; nothing is configured system-wide). Debian's package, installed when missing.
postgres:
	@if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" != 0 ]; then echo "PostgreSQL is missing: install Debian's postgresql package (sudo apt-get install postgresql)"; exit 1; fi; \
	  echo "installing PostgreSQL (Debian's postgresql package) for the team-store tests"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  (apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1 || \
	   (apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql >/dev/null)) || exit 1; \
	fi

# A headless Chromium for the browser face's test (tests/serving/test_web_face.py drives it over the
# DevTools protocol; nothing else is downloaded). Debian's package, installed when missing.
chromium:
	@if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then \
	  if [ "$$(id -u)" != 0 ]; then echo "Chromium is missing: install Debian's chromium package (sudo apt-get install chromium)"; exit 1; fi; \
	  echo "installing Chromium (Debian's chromium package) for the browser face's test"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  (apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || \
	   (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null)) || exit 1; \
	fi

# The sandbox (with Prometheus and Alertmanager), the model, PostgreSQL and Chromium are installed first, so their tests run (and fail loudly) instead of skipping.
test: model sandbox postgres chromium
	LANTERN_REQUIRE_SANDBOX=1 LANTERN_REQUIRE_MODEL=1 LANTERN_REQUIRE_POSTGRES=1 LANTERN_REQUIRE_CHROMIUM=1 $(PY) -m pytest -q

# `lantern bench NAME` benchmarks (python -m bench NAME), then the standalone scripts.
BENCHES := compaction retrieval retrieval-multiturn retrieval-scale scrub
BENCH_SCRIPTS := console_start engine_overhead first_run local_model
bench: setup
	@for b in $(BENCHES); do echo "== bench $$b"; $(PY) -m bench $$b || exit 1; done
	@for b in $(BENCH_SCRIPTS); do echo "== bench/$$b.py"; $(PY) bench/$$b.py || exit 1; done
