# Two entry points, both doing all set-up on a fresh machine:
#   make demo   the main job
#   make test   ruff + the test suite
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.kdloss-installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt "setuptools>=69" wheel
	$(PY) -m pip install -q -c constraints.txt --no-build-isolation -e ".[dev,ultralytics]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/kdloss demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: lint
	$(PY) -m pytest

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks
