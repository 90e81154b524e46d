# idgraph: `make run` and `make test` do the whole set-up first and are safe to re-run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# uv installs the exact versions of uv.lock into the venv (`make lock` refreshes the lock).
UV_VERSION := 0.13.9
UV := UV_PROJECT_ENVIRONMENT=$(VENV) UV_PYTHON_DOWNLOADS=never $(BIN)/uv

.PHONY: setup system venv neo4j-jars run stop test lint typecheck docs check format lock vendor clean

setup: system venv neo4j-jars

system:
	@sh scripts/setup-system.sh

venv: $(STAMP)

# --inexact keeps uv itself, which lives in the same venv; --frozen installs the lock as it is
$(STAMP): pyproject.toml uv.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) sync --quiet --frozen --inexact --extra dev --extra spark --python $(BIN)/python
	@touch $(STAMP)

# Resolve the dependencies again within pyproject.toml's bounds and write uv.lock.
lock: venv
	$(UV) lock --upgrade

# GraphiQL's scripts and styles from the npm registry into identity/api/static/vendor/ (committed:
# nothing is fetched at run time), each checked against the integrity hash its page states.
vendor: venv
	$(BIN)/python scripts/vendor_assets.py

neo4j-jars: venv
	@$(BIN)/idgraph neo4j fetch

# Demo keys for the API `make run` serves; set your own in the environment to override them.
DEMO_API_KEYS := {"demo-reader-key": "reader", "demo-steward-key": {"role": "steward", "name": "demo-steward"}, "demo-marketer-key": "marketer", "demo-admin-key": {"role": "admin", "name": "demo-admin"}}
DEMO_WRITE_KEYS := {"demo-write-key": "web"}

run: setup
	@$(BIN)/idgraph neo4j start
	@$(BIN)/idgraph db init
	@$(BIN)/idgraph demo
	@echo
	@echo "Neo4j: the Bolt URI above (user neo4j, password IDGRAPH_NEO4J_PASSWORD, default"
	@echo "idgraph-local-password). Stop it with: make stop"
	@echo "Console: http://127.0.0.1:8000/console  (sign in with demo-steward-key, demo-marketer-key,"
	@echo "  demo-reader-key or demo-admin-key)"
	@echo "GraphiQL: http://127.0.0.1:8000/graphql  (Headers: {\"Authorization\": \"Bearer demo-reader-key\"};"
	@echo "  demo-steward-key, demo-marketer-key, demo-admin-key for the other roles)"
	@echo "Segment ingestion: http://127.0.0.1:8000/v1/batch with write key demo-write-key"
	@echo
	@IDGRAPH_API_KEYS='$(or $(IDGRAPH_API_KEYS),$(DEMO_API_KEYS))' \
	 IDGRAPH_WRITE_KEYS='$(or $(IDGRAPH_WRITE_KEYS),$(DEMO_WRITE_KEYS))' \
	 $(BIN)/idgraph serve --host 127.0.0.1 --port 8000

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

# The documentation site (docs/, mkdocs.yml) into site/; a broken link or anchor fails it.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

check: lint typecheck docs test

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache .ruff_cache .hypothesis
