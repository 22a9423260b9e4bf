# One-command set-up for machines without a ROS 2 installation (ROS 2 wheels come from PyPI).
# On a robot with ROS 2 installed, build with colcon instead (see README).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
IMAGES ?=
CAMERAS ?=
DEMO_OUT ?= reports/demo
# Test files run in parallel, one worker per core up to 4 (each worker holds torch: ~1 GB).
# Every test module claims its own ROS domain, so workers never hear each other's nodes.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)
PYTEST_PARALLEL = -n $(TEST_WORKERS) --dist loadfile

.PHONY: venv test test-fast demo bench clean

$(VENV)/.installed: requirements.txt requirements-ros.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "setuptools>=70,<80" wheel
	$(PY) -m pip install -q -r requirements.txt -r requirements-ros.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.installed

test: venv
	$(PY) -m pytest -q $(PYTEST_PARALLEL) test

test-fast: venv
	$(PY) -m pytest -q $(PYTEST_PARALLEL) -m "not slow" test

demo: venv
	$(VENV)/bin/slimseg-demo --output $(DEMO_OUT) $(if $(IMAGES),--images $(IMAGES),) \
		$(if $(CAMERAS),--cameras $(CAMERAS),)

bench: venv
	$(VENV)/bin/slimseg-bench

clean:
	rm -rf build install log $(VENV) *.egg-info
