# Set-up and entry points. Everything runs from the virtual environment in .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test demo paper-demo bench clean

install: $(STAMP)

# The project itself goes in editable, without its dependencies (pinned by the requirements),
# so that fproi_jax, data_builders and configs import from any folder.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "fproi-jax needs Python >= 3.11; '$(PYTHON)' is $$($(PYTHON) --version 2>&1)." \
	       "Run e.g. 'make PYTHON=python3.11 install'." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

test: install
	$(PY) -m pytest -n 2 --durations=15 tests

demo: install
	bash scripts/demo.sh

# Every method of the paper's comparison on phantom data, one report (runs/paper_demo/report/).
paper-demo: install
	bash scripts/paper_demo.sh

# Our train steps against the same steps in PyTorch, plus input pipeline, evaluation and
# batch-size scaling (benchmarks/bench.py; writes benchmarks/results.md). torch goes in its
# own environment under .bench/, never in the project's. Flags: make bench BENCH_ARGS="..."
BENCH_TORCH := .bench/torch
BENCH_ARGS ?=

$(BENCH_TORCH)/.installed:
	$(PYTHON) -m venv $(BENCH_TORCH)
	$(BENCH_TORCH)/bin/pip install --quiet torch==2.13.0 numpy
	touch $@

bench: install $(BENCH_TORCH)/.installed
	$(PY) benchmarks/bench.py --torch=$(BENCH_TORCH)/bin/python $(BENCH_ARGS)

clean:
	rm -rf runs/demo runs/paper_demo
