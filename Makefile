# Set-up and entry points. Everything runs from the virtual environment in .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test parity demo paper-demo bench clean

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

# Every method's train step against its PyTorch twin, float64 as the referee
# (benchmarks/parity.py, benchmarks/pytorch_twin.py); then three bugs planted in the twin,
# each of which the check must catch.
PARITY := runs/parity
PLANTS := rfb_input cycle_weight adam_b1

parity: install $(BENCH_TORCH)/.installed
	$(PY) benchmarks/parity.py --out=$(PARITY)
	$(BENCH_TORCH)/bin/python benchmarks/pytorch_twin.py $(PARITY)
	@for plant in $(PLANTS); do \
	  if $(BENCH_TORCH)/bin/python benchmarks/pytorch_twin.py $(PARITY) --methods=fproi_gan \
	      --plant=$$plant > $(PARITY)/planted_$$plant.txt 2>&1; then \
	    echo "parity: the planted $$plant went unnoticed ($(PARITY)/planted_$$plant.txt)"; \
	    exit 1; fi; \
	  echo "parity: planted $$plant caught: $$(tail -n 1 $(PARITY)/planted_$$plant.txt)"; \
	done

clean:
	rm -rf runs/demo runs/paper_demo runs/parity
