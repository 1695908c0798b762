# Every target bootstraps what it needs on a fresh machine: the Debian
# packages (espeak-ng, sox; chromium for the page's browser test), the virtual
# environment and the project itself.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= demo_run
# The local mirrors listed in this machine's pip config are empty for most
# packages; hide pip's per-package warnings about them.
PIP_QUIET := { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: help install system-deps test lint demo clean

help:
	@echo "make demo   - install, synthesise a small RAVDESS, train, evaluate, classify a file"
	@echo "make test   - install, then lint and run the whole test suite (doctests included)"
	@echo "make lint   - ruff"
	@echo "make clean  - remove the venv, demo outputs and caches"

system-deps:
	@missing=""; for tool in espeak-ng sox chromium chromedriver; do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:$$missing"; \
		SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq espeak-ng sox chromium chromium-driver >/dev/null; \
	fi

$(VENV)/.installed: requirements.txt requirements-dev.txt setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 2>&1 | $(PIP_QUIET)
	$(PY) -m pip install -q -r requirements-dev.txt 2>&1 | $(PIP_QUIET)
	$(PY) -m pip install -q --no-deps -e . 2>&1 | $(PIP_QUIET)
	$(PY) -c "import torch, torchaudio, speechbrain, transformers; print('torch', torch.__version__, 'speechbrain', speechbrain.__version__, 'transformers', transformers.__version__)"
	@touch $@

install: system-deps $(VENV)/.installed

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: install lint
	$(PY) -m pytest

demo: install
	$(PY) -m speechbrain_ext.demo --out $(DEMO_DIR)

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache *.egg-info
