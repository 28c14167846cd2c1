# `make demo`: set up, then run the main job on its embedded default pipeline.
# `make test`: set up, then run the whole test suite.
# `make setup`: the set-up alone (system packages, .venv, torch, the project); idempotent.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.s2kit-setup-stamp
PIP := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: setup system-packages demo test bench clean

setup: system-packages $(STAMP)

system-packages:
	@bash scripts/system-packages.sh

# Re-run when the dependencies change. torch==2.13.0 is the CPU build on disk;
# installing it first means the project's torch requirement is already met and
# pip never pulls CUDA packages.
$(STAMP): pyproject.toml Makefile examples/s2kit-example-plugin/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip "setuptools>=77" wheel
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[test]'
	@touch $(STAMP)

demo: setup
	$(BIN)/s2kit plugins list
	$(BIN)/s2kit plan "put the red cube in the bowl" --scene "on the table: red cube at the front left, bowl at the back right"
	MUJOCO_GL=osmesa $(BIN)/s2kit run --suite id,distractor --episodes 3 --seed 100000 --set runtime.progress=executor \
		--video runs/demo/videos
	@echo "episode videos, S2's kept patches outlined: runs/demo/videos/<suite>/episode_*.mp4"

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/runtime_overhead.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
