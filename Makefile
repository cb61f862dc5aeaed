# The README's two commands: `make dev` (the local stack) and `make test` (the docs site built strictly,
# the whole suite on a single Redis, then the integration and end-to-end suites again on a local Redis
# Cluster); `make docs` serves the docs site on http://127.0.0.1:8001.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DOCS_ADDRESS ?= 127.0.0.1:8001
# mkdocs-material and mkdocs-gen-files print notices about MkDocs 2.0 on every build otherwise
export NO_MKDOCS_2_WARNING := 1
export DISABLE_MKDOCS_2_WARNING := true

.PHONY: dev test docs bench clean

dev: $(VENV)/.installed
	$(BIN)/pointsview dev

test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mkdocs build --strict --quiet --site-dir $(VENV)/site
	$(BIN)/pytest --durations=15
	POINTSVIEW_TEST_REDIS=cluster $(BIN)/pytest --durations=15 tests/integration tests/e2e

docs: $(VENV)/.installed
	$(BIN)/mkdocs serve -a $(DOCS_ADDRESS)

bench: $(VENV)/.installed
	$(BIN)/pointsview bench projector

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "pointsview needs Python 3.11+")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,docs]'
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis site
