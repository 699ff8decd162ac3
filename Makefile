# `make verify` and `make test` each work on a fresh machine with only Python 3.11:
# they create .venv, install the project with its extras, then run.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS := dev

.PHONY: verify test setup clean

$(VENV)/.installed-$(EXTRAS): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

setup: $(VENV)/.installed-$(EXTRAS)

verify: setup
	$(VENV)/bin/prefix-theory verify

test: setup
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
