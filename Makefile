# memat: the README's two commands are `make reproduce` and `make test`.
PYTHON ?= python
TORCH_VERSION ?= 2.13.0
# A local copy of the raw data sets (folders as in data/README.md); empty: download from pinned sources.
DATA_SOURCE ?= $(if $(MEMAT_DATA_SOURCE),$(MEMAT_DATA_SOURCE),$(if $(wildcard ../shared/data),$(abspath ../shared/data),))
export MEMAT_DATA_SOURCE := $(DATA_SOURCE)
PAPERMILL ?= $(PYTHON) -m papermill --log-level WARNING
# One CPU instruction set for MKL, torch, oneDNN and OpenBLAS, so that floats agree across x86 machines
# (src/memat/cpuenv.py says why; tests/test_cpuenv.py checks these equal memat.cpuenv.PINNED)
export MKL_CBWR ?= AVX2
export ATEN_CPU_CAPABILITY ?= avx2
export ONEDNN_MAX_CPU_ISA ?= AVX2
export OPENBLAS_CORETYPE ?= Haswell
# the reproduce config: configs/reproduce/cpu.yaml (CPU defaults), configs/reproduce/cpu-full.yaml (CPU, 128 edits,
# results/*_full.json) or configs/reproduce/paper.yaml (GPU, aguila-7b)
CONFIG ?= configs/reproduce/cpu.yaml
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
# Debian packages: Apertium English->Catalan, the offline translator of notebook 01
APT_PACKAGES := apertium apertium-eng-cat
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system python data model reproduce plan report test test-fast dry-run notebooks bench clean-runs

## system: Apertium eng-cat from Debian's packages (skipped when already installed)
system:
	@if apertium -l 2>/dev/null | grep -qE "^ *eng-cat$$"; then echo "apertium eng-cat: installed"; \
	else $(SUDO) apt-get install -y -q $(APT_PACKAGES) || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q $(APT_PACKAGES); }; fi

## setup: Apertium, torch (CPU build here, unless one is installed) and memat with its test extras
setup: system python

## python: torch (CPU build here, unless one is installed) and memat with its test extras, no apt
python:
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install "torch==$(TORCH_VERSION)"
	$(PYTHON) -m pip install -e ".[dev]"
	$(PYTHON) -m ipykernel install --user --name python3 >/dev/null

## data: raw data sets, verified by sha256 (copied from $(DATA_SOURCE) or downloaded)
data:
	$(PYTHON) -m memat.cli data

## model: convert the embedded GGUF once into the cached checkpoint
model:
	$(PYTHON) -m memat.cli model

## reproduce: set up, then run the notebooks of $(CONFIG) in order into runs/ (only those whose code,
## parameters, package or inputs changed since their last successful run), then rebuild paper.md.
## Apertium (apt, root or sudo) is installed only when a notebook that will run translates with it;
## VERBOSE=1 streams each notebook's output.
reproduce: python data model
	@if $(PYTHON) -m memat.cli reproduce --config $(CONFIG) --needs-apertium; then $(MAKE) --no-print-directory system; fi
	$(PYTHON) -m memat.cli reproduce --config $(CONFIG)$(if $(VERBOSE), --verbose)

## plan: which notebooks `make reproduce` would run, and why
plan:
	$(PYTHON) -m memat.cli reproduce --config $(CONFIG) --plan

## report: rebuild paper.md from results/*.json and figures/ (no notebook is run)
report:
	$(PYTHON) -m memat.cli report

## test: unit tests, integration tests on the embedded model, and nbval over the notebooks
test:
	$(PYTHON) -m pytest tests notebooks --nbval --nbval-sanitize-with .nbval-sanitize.cfg --nbval-cell-timeout 3000 --durations=30 -m "not dryrun"

## dry-run: every notebook of configs/reproduce/paper.yaml on a tiny random Falcon, under build/dry-run/ (about 5 min)
dry-run:
	$(PYTHON) -m pytest tests/test_dry_run.py -m dryrun

## test-fast: unit tests on tiny models only
test-fast:
	$(PYTHON) -m pytest tests -m "not slow"

## notebooks: re-run the notebooks in place on their defaults (commit the outputs afterwards)
notebooks:
	for nb in $(NOTEBOOKS); do $(PAPERMILL) $$nb $$nb --cwd notebooks || exit 1; done

## bench: speed and memory tables
bench:
	$(PYTHON) benchmarks/bench_memit.py
	$(PYTHON) benchmarks/bench_heads.py
	$(PYTHON) benchmarks/bench_evaluate.py
	$(PYTHON) benchmarks/bench_gpu_memory.py
