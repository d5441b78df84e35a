# Two entry points matter on a fresh machine that has only Python 3.11 and make:
#   make run   set up, then bring up the local stack and score the bundled sample evidence
#   make test  set up, then run linters, type checks, import contracts and every test
# uv is installed into .tools/ from PyPI and pointed at the machine's Python 3.11, because it
# cannot download Python builds here.

PYTHON ?= python3.11
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
RUN := $(UV) run --no-sync

export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)

.PHONY: setup run test lint typecheck typecheck-tests contracts pytest bench-quick bench lock docs

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Bytecode is compiled once here because PYTHONDONTWRITEBYTECODE may be set on the machine, and
# then every test subprocess would compile scikit-learn, pandas and friends again (seconds each).
setup: $(UV)
	$(UV) sync --all-packages --locked --compile-bytecode

run: setup
	$(RUN) evidence-stack

test: setup lint typecheck typecheck-tests contracts pytest bench-quick

lint:
	$(RUN) ruff check .

typecheck:
	$(RUN) mypy libs/features/src libs/logging/src libs/synthetic/src services/model_client/src services/persistence/src services/gateway/src services/dashboard/src training/src

# Test and benchmark folders for typecheck-tests. mypy runs from the repository root, so it names
# each module by its path (services.gateway.tests.conftest), as pytest's importlib mode does, and
# relative imports such as `from .conftest import ...` resolve. FOLDER:PATH puts PATH on MYPYPATH
# for a folder whose conftest adds PATH to sys.path, so that its tests import helper modules by
# their bare names. mypy then names the modules under PATH from PATH (`conftest`,
# `persistence_testkit`). Each folder gets its own run, because two top-level `conftest` modules
# in one run would clash.
TYPECHECK_TEST_DIRS := \
	libs/features/tests:libs/features/tests \
	libs/logging/tests \
	libs/synthetic/tests \
	training/tests \
	services/gateway/tests \
	services/persistence/tests:services/persistence/tests \
	services/model_client/tests \
	services/dashboard/tests \
	tests/cli \
	tests/layout \
	tests/deploy \
	tests/e2e \
	tests/logs \
	tests/reliability:tests/reliability \
	benchmarks:libs/features/tests

# Every folder is checked even after one fails, so that one run lists all type errors.
typecheck-tests:
	@status=0; for entry in $(TYPECHECK_TEST_DIRS); do \
		dir=$${entry%%:*}; path=$${entry#"$$dir"}; path=$${path#:}; \
		echo "mypy $$dir$${path:+ with MYPYPATH=$$path}"; \
		MYPYPATH=$$path $(RUN) mypy $$dir || status=1; \
	done; exit $$status

contracts:
	$(RUN) lint-imports

# pytest exits with 5 when it collected no test; that must fail the run, not pass it.
# pytest-xdist runs one worker per core, at most 4, and keeps each module's tests on one worker
# so that a module's servers start once. Most tests wait on real processes they started, so two
# workers on 2 cores cut the run by about a third (README, `make test`).
pytest:
	$(RUN) pytest -n logical --maxprocesses 4 --dist loadscope; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing the run" >&2; exit 1; fi; \
	exit $$status

# Quick mode gates on ratios against floors measured in the same run, so it tolerates a noisy
# shared machine; full mode adds the load sweep, faults under load and scaling runs, then draws
# the plots in docs/img/ and writes var/bench/report.md.
bench-quick: setup
	$(RUN) pytest benchmarks --bench-mode quick -p no:randomly

bench: setup
	mkdir -p var/bench
	$(RUN) pytest benchmarks --bench-mode full -p no:randomly --benchmark-json var/bench/pytest-benchmark.json; \
	status=$$?; $(RUN) python scripts/bench_report.py; exit $$status

lock: $(UV)
	flock /tmp/evidence-uv.lock $(UV) lock

docs: setup
	$(RUN) python -m evidence_features.docs --write docs/features.md
