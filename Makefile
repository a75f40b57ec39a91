# Two entry points on a fresh machine: `make run` (the main job) and `make test` (the suite).
# Each creates .venv if missing and installs what it needs; torch is pinned in constraints.txt
# and installed first so nothing pulls a CUDA build.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install -q --disable-pip-version-check -c constraints.txt
STAMP  := $(VENV)/.installed

.PHONY: run test bench venv clean

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e ".[test,envs,ray,smax,tensorboard,wandb]"
	touch $(STAMP)

venv: $(STAMP)

# The quickstart sweep (resumable: a second `make run` only redoes what is missing), its report,
# and the two-step game's learned Q_tot for QMIX and VDN.
run: $(STAMP)
	-$(VENV)/bin/factorize sweep quickstart --budget quick --workers 2
	$(VENV)/bin/factorize report results/quickstart --out report/quickstart
	@for algo in qmix vdn; do \
	  echo "== $$algo on two_step (seed 0): greedy return and Q_tot per state"; \
	  $(VENV)/bin/factorize eval results/quickstart/two_step/$$algo/default/s0 --episodes 8 || exit $$?; \
	  $(VENV)/bin/factorize qtable results/quickstart/two_step/$$algo/default/s0 || exit $$?; \
	done
	@echo "report: report/quickstart/report.md"

# lint and types, the tests, then each benchmark once untimed: a run of its own, since tests/
# and benchmarks/ both have a conftest.py
test: $(STAMP)
	$(VENV)/bin/ruff check factorize tests benchmarks
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -n 2 --benchmark-disable
	$(PY) -m pytest -q -n 2 --benchmark-disable -p no:randomly benchmarks

bench: $(STAMP)
	$(PY) -m pytest benchmarks -q -p no:randomly --benchmark-only --benchmark-columns=mean,stddev,rounds

clean:
	rm -rf $(VENV) runs .pytest_cache .benchmarks
