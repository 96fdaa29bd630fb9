# `make test` and `make demo` set everything up on a fresh machine: a virtual environment
# (VENV=... picks where), the package with its test extra, then the checks or the demo.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The stamp names what the environment was built from, so a change to the requirements or a
# move of the checkout (the editable install points at it) reinstalls; otherwise reruns are quick.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-12)-$(shell printf '%s' "$(CURDIR)" | sha256sum | cut -c1-8)

.PHONY: test lint pytest test-lowest demo install clean

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

# The lowest versions of the direct dependencies that pyproject.toml allows (constraints-lowest.txt), installed without
# their dependencies into a folder named by that file's hash and put in front of the environment with PYTHONPATH:
# torch and torchvision stay the pinned pair, the rest stays as `install` left it. The tests, in the full suite's
# order: the metrics (tests/suite too), the callback, the fault injection into real runs, the samplers, the statistics
# files, the checks of the private APIs used, two DDP runs and the doctests. tests/compat is left out: "same number as torchmetrics" holds for the
# torchmetrics of constraints.txt only.
LOWEST := $(VENV)/lowest-$(shell sha256sum constraints-lowest.txt | cut -c1-12)
LOWEST_TESTS := tests/callbacks tests/ddp/test_ddp.py tests/ddp/test_ddp_config.py tests/functional tests/metrics \
	tests/reliability tests/samplers tests/suite tests/test_compat_libraries.py tests/test_stats.py lightning_genmetrics

$(LOWEST)/.installed: constraints-lowest.txt | $(STAMP)
	rm -rf $(VENV)/lowest-*
	$(PY) -m pip install --quiet --no-deps --target $(LOWEST) -r constraints-lowest.txt
	touch $@

test-lowest: $(STAMP) $(LOWEST)/.installed
	PYTHONPATH=$(LOWEST) $(PY) -c 'import importlib, re, sys; \
		pins = re.findall(r"^([a-z_]+)==(\S+)", open("constraints-lowest.txt").read(), re.M); \
		found = {name: importlib.import_module(name).__version__ for name, _ in pins}; \
		print("lowest versions:", found); \
		sys.exit(any(found[name] != version for name, version in pins))'
	PYTHONPATH=$(LOWEST) $(PY) -m pytest $(LOWEST_TESTS) $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) examples/diffusion_digits.py

clean:
	rm -rf .venv build *.egg-info
