# Two commands on a fresh machine:  make demo  (whole workflow on the demo sites)
#                                   make test  (test suite)
# Both create the virtual environment in .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: demo test test-slow test-slurm report env dry-run clean setup-slurm

# aeon: only the UCR/UEA data files in its wheel are read (bench/validity.py, tests); it is never
# imported, and its own requirements would downgrade numpy and pandas, hence --no-deps.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps aeon==1.6.0
	touch $@

env: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/snakemake --cores $(CORES)

dry-run: $(BIN)/.installed
	$(BIN)/snakemake -n

test: $(BIN)/.installed
	$(BIN)/python -m pytest -n 2 --dist loadgroup

test-slow: $(BIN)/.installed
	$(BIN)/python -m pytest -m slow

test-slurm: $(BIN)/.installed
	INSARCLUST_SLURM=1 $(BIN)/python -m pytest -m slurm

report: demo
	$(BIN)/snakemake --cores $(CORES) --report report.html

setup-slurm:
	bash scripts/setup-profile.sh

clean:
	rm -rf results logs benchmarks resources .snakemake report.html
