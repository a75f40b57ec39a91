# Two entry points on a fresh machine: `make run` (the main job) and `make test` (the suite).
# Each creates .venv if missing and installs what it needs; torch is pinned in constraints.txt
# and installed first so nothing pulls a CUDA build.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install -q --disable-pip-version-check -c constraints.txt
STAMP  := $(VENV)/.installed
OUT    ?= runs/make-run

.PHONY: run test bench venv clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e ".[test,envs]"
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	@for algo in qmix vdn; do \
	  $(VENV)/bin/factorize train --algo $$algo --env two_step --steps 4000 --seed 0 \
	    --out $(OUT)/$$algo explore.schedule=fixed || exit $$?; \
	  $(VENV)/bin/factorize qtable $(OUT)/$$algo || exit $$?; \
	done

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --benchmark-disable

bench: $(STAMP)
	$(PY) -m pytest benchmarks -q -p no:randomly --benchmark-only --benchmark-columns=mean,stddev,rounds

clean:
	rm -rf $(VENV) runs .pytest_cache .benchmarks
