# idgraph: `make run` and `make test` do the whole set-up first and are safe to re-run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup system venv neo4j-jars run stop test lint typecheck check format clean

setup: system venv neo4j-jars

system:
	@sh scripts/setup-system.sh

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

neo4j-jars: venv
	@$(BIN)/idgraph neo4j fetch

run: setup
	@$(BIN)/idgraph neo4j start
	@$(BIN)/idgraph db init
	@$(BIN)/idgraph demo
	@echo
	@echo "Neo4j is serving on the Bolt URI above (user neo4j, password from IDGRAPH_NEO4J_PASSWORD,"
	@echo "default idgraph-local-password), with the demo data loaded."
	@echo "Stop it with: $(BIN)/idgraph neo4j stop"

stop: venv
	@$(BIN)/idgraph neo4j stop

# pytest exits 5 when it collected no test: that is a failure here, as any non-zero code.
test: setup
	@$(BIN)/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; fi; exit $$rc

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

check: lint typecheck test

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
