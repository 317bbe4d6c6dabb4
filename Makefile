# hsr_lab: two commands on a fresh machine: `make lab` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Extra arguments for JupyterLab, e.g. `make lab LAB_ARGS="--port=8899 --no-browser"`.
LAB_ARGS ?=
# Running as root (containers) needs --allow-root; a normal user does not.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: lab test lint figures bench install clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -e ".[notebooks,test,real,validate,peers]"
	touch $(STAMP)

install: $(STAMP)

lab: $(STAMP)
	$(PY) -m jupyter lab --notebook-dir=notebooks --ServerApp.ip=127.0.0.1 $(ROOT_FLAG) $(LAB_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check hsr_lab tests benchmarks notebooks

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

figures: $(STAMP)
	$(PY) -m hsr_lab figures --out figures $(FIG_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis .hsr_lab_cache test-artifacts
