# Two commands do everything on a fresh machine: `make repro` and `make test`.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(abspath $(VENV))/bin
STAMP  := $(VENV)/.installed
# Stage commands in dvc.yaml call `python`; put the venv first so they use it.
RUN    := PATH="$(BIN):$$PATH" TF_CPP_MIN_LOG_LEVEL=2

.PHONY: setup repro test test-fast mutation check exp tune clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

repro: setup
	$(RUN) $(BIN)/imgclf check params.yaml
	$(RUN) $(BIN)/dvc repro

# One pytest worker per core (pytest-xdist; a worker more measured no faster, docs/hardware.md). A
# test file stays on one worker, in order, because the end-to-end files walk a pipeline repo per
# module through a user's steps; files go out in tests/conftest.py's order, longest first
# (--no-loadscope-reorder keeps it).
# TEST_WORKERS=0 runs everything in this process (for pdb). The 20 slowest tests are listed at the end.
TEST_WORKERS ?= auto
PYTEST := $(RUN) $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=20

test: setup
	$(PYTEST) $(PYTEST_ARGS)

# The unit tests only: what a developer runs between edits.
test-fast: setup
	$(PYTEST) -m "not slow" $(PYTEST_ARGS)

# The fast tests' mutation score per core module (docs/mutation.md, with its counts and times; not
# part of `make test`): hours on 2 cores. Stop it at any time: mutmut keeps results in mutants/ and
# goes on where it stopped; MUTANTS="imgclf.data.split.*" runs (or re-tests) a subset,
# MUTANTS="$$(python bench/mutation_score.py --sample 50)" a random 50 unchecked per module;
# MUTATION_REPORT names where its report goes, so a partial run does not replace the full one.
# Tests edited since the last run are copied into mutants/ and mutmut maps tests to mutants again
# (a pass over the suite), so re-testing survivors by name sees the new tests. Tests that need the
# MobileNet weights are skipped unless KERAS_HOME has them.
MUTATION_REPORT ?= docs/mutation.md
mutation: setup
	$(BIN)/pip install --quiet -r requirements-mutation.txt
	@if [ -f mutants/mutmut-stats.json ] && [ -n "$$(find tests -name '*.py' -newer mutants/mutmut-stats.json)" ]; then \
	  echo "tests changed since the last mutation run: mapping tests to mutants again"; \
	  cp tests/*.py mutants/tests/ && rm mutants/mutmut-stats.json; fi
	$(RUN) $(BIN)/mutmut run --max-children $$(nproc) $(strip $(MUTANTS)) > mutants.log 2>&1 || (tail -c 2000 mutants.log; exit 1)
	$(RUN) $(BIN)/python bench/mutation_score.py --out $(MUTATION_REPORT)

# A named recipe from presets/ as a DVC experiment: make exp PRESET=cnn [ARGS="-S train.cnn.epochs=6"]
exp: setup
	$(RUN) $(BIN)/imgclf preset $(PRESET) $(ARGS)

# Optuna TPE over DVC experiments: make tune [SPACE=search/head.yaml] [TRIALS=30]
SPACE  ?= search/head.yaml
TRIALS ?= 30
tune: setup
	$(RUN) $(BIN)/imgclf tune --space $(SPACE) --trials $(TRIALS)

check: setup
	$(RUN) $(BIN)/imgclf check params.yaml

clean-venv:
	rm -rf $(VENV)
