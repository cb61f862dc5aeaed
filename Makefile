# The README's two commands: `make dev` (the local stack) and `make test` (the whole suite on a single
# Redis, then the integration and end-to-end suites again on a local Redis Cluster).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: dev test bench clean

dev: $(VENV)/.installed
	$(BIN)/pointsview dev

test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest --durations=15
	POINTSVIEW_TEST_REDIS=cluster $(BIN)/pytest --durations=15 tests/integration tests/e2e

bench: $(VENV)/.installed
	$(BIN)/pointsview bench projector

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "pointsview needs Python 3.11+")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
