# Set-up and the two Quick start commands. `make demo` runs the embedded demo
# end to end; `make test` runs the test suite. Both create .venv on first use.

VENV ?= .venv
PYTHON ?= python3
# The CPU build of torch on a CPU machine; override, e.g. TORCH="torch==2.13.0 --index-url ...", for CUDA.
TORCH ?= torch==2.13.0
CORES ?= 2
STAMP := $(VENV)/.installed-stamp
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

.PHONY: demo test setup clean-results

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet $(TORCH)
	$(VENV)/bin/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(OFFLINE) $(VENV)/bin/snakemake --cores $(CORES)

test: $(STAMP)
	$(OFFLINE) $(VENV)/bin/python -m pytest

clean-results:
	rm -rf results logs .snakemake
