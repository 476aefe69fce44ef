# The two commands of the README: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Written after a successful install; newer than setup.cfg and pyproject.toml means nothing to do.
INSTALLED := $(VENV)/.seqapps-installed
PYTEST_ARGS ?= -m "not slow"

.PHONY: demo test test-slow lint format install bench-tcn

install: $(INSTALLED)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --editable ".[dev]"
	touch $@

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

# The long checks that `make test` leaves out (full training runs); run them before closing an issue.
test-slow: $(INSTALLED)
	$(BIN)/pytest -m slow

# The sentiment app brings the demo (issue [sentiment]); until it lands, say so and fail.
demo:
	@echo "make demo: the sentiment app has not landed yet; 'make test' is what works today." >&2
	@exit 1

# Benchmarks (bench/RESULTS.md holds their figures). keras-tcn is benchmarked, never a dependency:
# its wheel's metadata names tensorflow-macos, so it goes in without dependencies, beside the bench.
bench/.keras-tcn: | $(INSTALLED)
	$(BIN)/python -m pip install --quiet --no-deps --target $@ keras-tcn==3.5.7

bench-tcn: bench/.keras-tcn
	$(BIN)/python bench/bench_tcn.py throughput
	$(BIN)/python bench/bench_tcn.py adding
