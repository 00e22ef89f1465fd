# Every target makes its own virtualenv (.venv) and installs what it needs into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install test unit functional lint demo bench docs man clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test,stack]'
	touch $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q -n 2 tests

unit: install
	$(BIN)/pytest -q tests/unit

functional: install
	$(BIN)/pytest -q tests/functional

demo: install
	$(BIN)/python deploy/ovs_demo.py
	$(BIN)/python deploy/demo.py

bench: install
	$(BIN)/python bench/discovery/run.py
	$(BIN)/python bench/report/run.py
	$(BIN)/python bench/host/run.py
	$(BIN)/python bench/host/inuse.py
	$(BIN)/python bench/stack/run.py
	$(BIN)/python bench/stack/ports.py
	$(BIN)/python bench/placement/first_report.py
	$(BIN)/python bench/placement/run.py

man: install
	$(BIN)/python -m cyborg_smartnic.cli.manpage > docs/cyborg-smartnic.1

docs: install man
	$(BIN)/oslo-config-generator --namespace cyborg_smartnic > docs/cyborg-smartnic.conf.sample

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
