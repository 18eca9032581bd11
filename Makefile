# pipedial: `make run` and `make test` are all a fresh clone needs.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt pyproject.toml | cksum | cut -d' ' -f1)

CHECKOV := .venv-checkov/bin/checkov

.PHONY: install run test lint fmt tf-check bench clean

install: $(STAMP)

# checkov lives in its own virtualenv: it pins versions that conflict with ours (packaging).
$(CHECKOV): requirements-checkov.txt
	test -x .venv-checkov/bin/python || python3 -m venv .venv-checkov
	.venv-checkov/bin/pip install -q --disable-pip-version-check -r requirements-checkov.txt
	touch $@

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $@

run: $(STAMP)
	scripts/run-dev

test: $(STAMP) $(CHECKOV) lint
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check receiver tests scripts
	$(VENV)/bin/mypy

fmt: $(STAMP)
	$(VENV)/bin/ruff check --fix receiver tests scripts
	terraform fmt -recursive terraform

tf-check: $(STAMP)
	scripts/check-terraform

bench: $(STAMP)
	scripts/bench/run

clean:
	rm -rf $(VENV) .venv-checkov var .pytest_cache .mypy_cache .ruff_cache
