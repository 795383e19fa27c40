# Two commands on a fresh machine:  `make run`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CONFIG ?= configs/train.yaml

.PHONY: setup run test bench clean help

help:
	@echo "make run    set up, then train on the embedded synthetic data ($(CONFIG))"
	@echo "make test   set up, then run the test suite"
	@echo "make setup  create .venv and install (torch CPU first, then the pinned stack)"
	@echo "make bench  run the benchmarks (writes BENCHMARKS.md entries)"

setup: $(VENV)/.sidkit-installed

$(VENV)/.sidkit-installed: pyproject.toml infra/setup.sh
	PYTHON=$(PYTHON) bash infra/setup.sh

run: setup
	$(PY) run.py train --config $(CONFIG) --summary .sidkit/summaries/train.json

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/tokenizer_speed.py

clean:
	rm -rf .sidkit .zen
