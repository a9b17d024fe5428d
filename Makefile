# Two entry points for a fresh machine: `make test` and `make book`.
# Each creates .venv with the pinned requirements first (idempotent: a stamp file
# records the install; it is redone when requirements.txt or pyproject.toml change).
PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PROFILE ?= full

.PHONY: test book book-run book-html check-book venv clean toolchain wasm-toolchain results results-size search

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

# The RISC-V toolchain for the CH32V003 firmware (Debian packages), installed once
# when riscv64-unknown-elf-gcc is missing (sudo only when not root).
RISCV_PKGS := gcc-riscv64-unknown-elf binutils-riscv64-unknown-elf picolibc-riscv64-unknown-elf
toolchain:
	@command -v riscv64-unknown-elf-gcc >/dev/null 2>&1 || { \
	  command -v apt-get >/dev/null 2>&1 || { echo "error: riscv64-unknown-elf-gcc missing and no apt-get: install $(RISCV_PKGS) by hand" >&2; exit 1; }; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q $(RISCV_PKGS); }

# clang and wasm-ld (Debian packages clang, lld): the C engine compiled to WebAssembly for
# the book's in-browser page (bitnetlib/deploy/wasm.py), installed once when missing.
WASM_PKGS := clang lld
wasm-toolchain:
	@{ command -v clang && command -v wasm-ld; } >/dev/null 2>&1 || { \
	  command -v apt-get >/dev/null 2>&1 || { echo "error: clang or wasm-ld missing and no apt-get: install $(WASM_PKGS) by hand" >&2; exit 1; }; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q $(WASM_PKGS); }

test: $(STAMP) toolchain wasm-toolchain
	$(BIN)/python -m pytest -q

# The book: every chapter (notebooks/NN_*.py, Jupytext percent format) is converted to
# .ipynb and executed by papermill with `-p profile $(PROFILE)` into _build/notebooks/;
# the executed notebooks and the prose pages are staged in _build/src and built to
# _build/html by Jupyter Book (which never executes anything), warnings as errors.
# Per-chapter wall times go to _build/notebooks/timings.txt.
#   make book                         the published book: the write-up's settings (`full`),
#                                     every run read from the results store, nothing trained
#   make book PROFILE=smoke           every chapter trained at a small scale (code health)
#   make book CHAPTERS="03_qat_vs_ptq" only these chapters are executed again
#   make book-run PROFILE=smoke NB_DIR=_build/smoke   executed elsewhere (CI runs both)
#   BITNET_RECOMPUTE=1 make book PROFILE=smoke   retrain every run instead of reusing runs/cache
NB_DIR   ?= _build/notebooks
BOOK_SRC := _build/src
ALL_CHAPTERS := $(basename $(notdir $(sort $(wildcard notebooks/[0-9][0-9]_*.py))))
CHAPTERS ?= $(ALL_CHAPTERS)

# At `full` the chapters read the results store (results/) and train nothing: a missing
# run stops its chapter, naming the run and `make results`.
BOOK_TRAIN := $(if $(filter full,$(PROFILE)),0,1)

book: book-run
	@$(MAKE) --no-print-directory book-html

book-run: $(STAMP) toolchain wasm-toolchain
	mkdir -p $(NB_DIR)
	@set -e; for name in $(CHAPTERS); do \
	  t0=$$(date +%s); echo "== $$name (profile $(PROFILE))"; \
	  $(BIN)/jupytext --quiet --to ipynb notebooks/$$name.py -o $(NB_DIR)/$$name.src.ipynb; \
	  BITNET_TRAIN=$(BOOK_TRAIN) PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/papermill --no-progress-bar --log-level WARNING \
	    -k python3 --cwd notebooks -p profile $(PROFILE) \
	    $(NB_DIR)/$$name.src.ipynb $(NB_DIR)/$$name.tmp.ipynb; \
	  $(BIN)/python -m bitnetlib.book.stage $(NB_DIR)/$$name.tmp.ipynb; \
	  mv $(NB_DIR)/$$name.tmp.ipynb $(NB_DIR)/$$name.ipynb; rm -f $(NB_DIR)/$$name.src.ipynb; \
	  echo "$$name $(PROFILE) $$(( $$(date +%s) - t0 )) s" | tee -a $(NB_DIR)/timings.txt; \
	done

book-html: $(STAMP)
	rm -rf $(BOOK_SRC) && mkdir -p $(BOOK_SRC)/notebooks
	cp -r _config.yml _toc.yml book _static $(BOOK_SRC)/
	@for name in $(ALL_CHAPTERS); do \
	  test -f $(NB_DIR)/$$name.ipynb || { echo "$(NB_DIR)/$$name.ipynb missing: run make book-run" >&2; exit 1; }; \
	  cp $(NB_DIR)/$$name.ipynb $(BOOK_SRC)/notebooks/; done
	$(BIN)/jupyter-book build $(BOOK_SRC) --path-output . -n -W --keep-going

# Open the built book in headless Chromium (tests/test_book_html.py): fails on a missing
# image, a broken internal link or a chapter without figures; tests/test_engine_page.py
# runs chapter 26's wasm engine against the host engine (tests/test_wasm.py: the wasm
# build alone). Run after `make book`; installs Debian's chromium with apt when missing.
check-book: $(STAMP)
	@test -f _build/html/index.html || { echo "_build/html/index.html missing: run make book first" >&2; exit 1; }
	@command -v chromium >/dev/null 2>&1 || { \
	  command -v apt-get >/dev/null 2>&1 || { echo "chromium is missing and apt-get is unavailable: install Chromium so that 'chromium' is on PATH" >&2; exit 1; }; \
	  echo "installing chromium with apt-get"; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -q chromium; }
	BOOK_CHECK_REQUIRED=1 $(BIN)/python -m pytest -q tests/test_book_html.py tests/test_engine_page.py tests/test_wasm.py

# The results store (results/, bitnetlib/book/store.py): `make results` runs the chapters
# at full and computes every run they ask for that the store lacks, in parallel on Dask
# (a LocalCluster of this machine, or BITNET_SCHEDULER=tcp://HOST:8786), publishing each
# run as it finishes; rerun it after an interruption.
results: $(STAMP) toolchain
	$(BIN)/bitnet results fill --chapters $(CHAPTERS)

results-size: $(STAMP)
	@$(BIN)/bitnet results size

# Chapter 28's Optuna search (bitnetlib/book/search): per-layer types and widths, C-engine
# accuracy vs packed bytes. Trials train on Dask like `make results` (BITNET_SCHEDULER, else a
# LocalCluster), each run is published to results/runs, the study is results/optuna/STUDY.db;
# rerun it after an interruption. Then `make results CHAPTERS=28_optuna_search` (pruning runs).
#   make search                                   the chapter's study (fc_mixed, 100 trials)
#   make search TRIALS=150 SEARCH_ARGS="--sampler tpe --study fc_tpe --storage postgresql://..."
search: $(STAMP)
	$(BIN)/bitnet search $(if $(STUDY),--study $(STUDY)) $(if $(TRIALS),--trials $(TRIALS)) $(SEARCH_ARGS)

clean:
	rm -rf _build
