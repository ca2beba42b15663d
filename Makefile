# Two commands on a fresh machine: `make repro` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DVC_NO_ANALYTICS := 1
# Stage commands in dvc.yaml call `python`, `scrapy`: the venv's.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: repro crawl-plan repro-paper repro-mission bench-mission bench-ray review test venv constraints browser fashion-mnist verify verify-full verify-fingerprint tune bench bench-train bench-prep bench-crawl bench-pipeline bench-keras bench-paper clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

# After a change of pyproject.toml's dependencies: the exact versions of a fresh install, for everyone.
constraints:
	rm -rf /tmp/christies-dcec-constraints && $(PYTHON) -m venv /tmp/christies-dcec-constraints
	/tmp/christies-dcec-constraints/bin/pip install --quiet -e '.[test]'
	/tmp/christies-dcec-constraints/bin/pip freeze --exclude-editable | sed 's/+cpu$$//' > constraints.body
	{ head -n 2 constraints.txt; cat constraints.body; } > constraints.new && rm constraints.body && mv constraints.new constraints.txt

venv: $(STAMP)

repro: $(STAMP)
	$(BIN)/dvc repro

# What the scrape stage would ask the site (settled months, months to fetch, requests, time), asking nothing.
crawl-plan: $(STAMP)
	$(BIN)/python -m scraper.plan $(if $(PROFILE),--profile $(PROFILE))

# The paper's configuration (profiles/paper.yaml: live crawl, 50 x 250 works, GPU if present); docs/PAPER_PROFILE.md.
repro-paper: $(STAMP)
	set -f; args="$$($(BIN)/python -m common.profiles profiles/paper.yaml)" && $(BIN)/dvc exp run -n paper $$args

# The mission's size on the embedded demo (profiles/mission-demo.yaml: 50 x 250 works, 128 px, k = 50), as an
# experiment in this workspace; bench-mission runs it from scratch in a scratch copy, timed stage by stage.
repro-mission: $(STAMP)
	set -f; args="$$($(BIN)/python -m common.profiles profiles/mission-demo.yaml)" && $(BIN)/dvc exp run -n mission $$args
bench-mission: $(STAMP)
	$(BIN)/python -m bench.pipeline --profile profiles/mission-demo.yaml
# The compare stage locally and on a two-node loopback Ray cluster, same run (needs `make repro` first).
bench-ray: $(STAMP)
	$(BIN)/python -m bench.ray_compare
	$(BIN)/python -m bench.ray_exp

# The curator's review app on 127.0.0.1 (open the URL it prints first); decisions go to data/review/manifest.csv.
review: $(STAMP)
	$(BIN)/python -m curation.review_app $(if $(PORT),--port $(PORT))

# The review page is tested in a real headless browser: Debian's chromium + chromedriver.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "browser tests need: sudo apt-get install chromium chromium-driver" >&2; fi; \
	fi

test: $(STAMP) browser fashion-mnist
	$(BIN)/python -m pytest -q

# Verification on Fashion-MNIST (Debian package dataset-fashion-mnist; needs root for apt-get).
FMNIST := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
$(FMNIST):
	apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist

# make test's fingerprint check reads it too; like `browser`, installed when root, else the test skips saying so.
fashion-mnist:
	@if [ ! -f $(FMNIST) ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	  else echo "the fingerprint test needs: sudo apt-get install dataset-fashion-mnist" >&2; fi; \
	fi

verify: $(STAMP) $(FMNIST)
	$(BIN)/python -m model.verify --quick --seeds 2
	$(BIN)/python -m model.deepcluster_train --verify-fashion-mnist --quick

# Guo's full protocol, 3 seeds, 1.5 hours per seed on 2 CPU cores; resumes after an interruption. Then the
# fingerprint of the commit that computed them (reports/verify/fingerprint.json).
verify-full: $(STAMP) $(FMNIST)
	$(BIN)/python -m model.verify --seeds 3
	$(BIN)/python -m model.fingerprint --record

# Does HEAD compute what the commit of the full-protocol results computed? A short fp32 run, about a minute
# (docs/VERIFICATION.md, "Verification fingerprint"); exits 1, saying what differs, when it does not.
verify-fingerprint: $(STAMP) $(FMNIST)
	$(BIN)/python -m model.fingerprint

# Choose the embedded default's tuned settings on another demo catalogue (docs/VERIFICATION.md, Tuning protocol).
tune: $(STAMP)
	$(BIN)/python -m bench.tune_default --record-to docs/VERIFICATION.md

bench: bench-train bench-prep bench-crawl bench-pipeline bench-keras
bench-train bench-prep bench-crawl bench-pipeline: $(STAMP)
	$(BIN)/python -m bench.$(subst bench-,,$@)

# Keras on the identical nets (issue #17), in its own environment: TensorFlow is never a pipeline dependency.
KERAS_VENV := .venv-keras
$(KERAS_VENV)/bin/python:
	$(PYTHON) -m venv $(KERAS_VENV) && $(KERAS_VENV)/bin/pip install -q "tensorflow-cpu==2.21.0" "keras==3.15.1"
# bf16 only where the CPU has it in hardware: AMX tiles (Intel Sapphire Rapids+) or AVX-512 BF16 (AMD Zen 4+, Intel Cooper Lake)
bench-keras: $(STAMP) $(KERAS_VENV)/bin/python
	$(BIN)/python -m bench.keras_compare --keras-python $(KERAS_VENV)/bin/python --precision fp32
	@if grep -q -w -E 'amx_bf16|avx512_bf16' /proc/cpuinfo; then $(BIN)/python -m bench.keras_compare --keras-python $(KERAS_VENV)/bin/python --precision bf16; \
	else echo "bench-keras: no bf16 instructions (AMX or AVX-512 BF16) on this CPU, so bf16 is emulated: skipping the bf16 comparison"; fi
bench-paper: $(STAMP)
	$(BIN)/python -m bench.paper_suite    # on CUDA: the whole paper run and a Fashion-MNIST seed; budgets: --help

clean-venv:
	rm -rf $(VENV)
