# `make test` and `make demo` set everything up on a fresh machine: a virtual environment
# (VENV=... picks where), the package with its test extra, then the checks or the demo.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The stamp names what the environment was built from, so a change to the requirements or a
# move of the checkout (the editable install points at it) reinstalls; otherwise reruns are quick.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-12)-$(shell printf '%s' "$(CURDIR)" | sha256sum | cut -c1-8)

.PHONY: test lint pytest demo install clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

pytest: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test: lint pytest

demo: $(STAMP)
	$(PY) examples/diffusion_digits.py

clean:
	rm -rf .venv build *.egg-info
