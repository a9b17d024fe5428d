# Two entry points for a fresh machine: `make test` and `make book`.
# Each creates .venv with the pinned requirements first (idempotent: a stamp file
# records the install; it is redone when requirements.txt or pyproject.toml change).
PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PROFILE ?= smoke

.PHONY: test book venv clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

test: $(STAMP)
	$(BIN)/python -m pytest -q

book: $(STAMP)
	$(BIN)/jupyter-book build . -n -W --keep-going

clean:
	rm -rf _build
