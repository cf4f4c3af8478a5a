# The README's two commands: `make book` and `make test`. Both create the environment first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CWL    := $(VENV)/bin/cwl
STAMP  := $(VENV)/.cwl-installed
# Idle OpenMP threads spin by default. Where several torch processes compute at once (pytest beside the notebook
# kernels it starts), two spinning on 2 cores slowed torch 9-18x (benchmarks/bench_openmp.py), so the tests run
# with passive threads, and the benchmarks too (their figures were measured so). `make book` runs one notebook
# kernel at a time while cwl waits; there spinning is 2.2x faster (a laptop freeze+cwl run: 7.7 s spinning, 17 s
# passive, 11.6 s on one thread), so it keeps torch's default. Beside another torch job, run
# `OMP_WAIT_POLICY=PASSIVE make book`.
PASSIVE_OMP := unit nbval nbval-portable bench
$(PASSIVE_OMP): export OMP_WAIT_POLICY ?= PASSIVE

# a notebook's partial or failed copy is never a notebook to check
NBVAL  := $(PY) -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=600 -p no:cacheprovider notebooks -q \
          --ignore-glob='*.running.ipynb' --ignore-glob='*.failed.ipynb'

.PHONY: setup lock book test unit nbval nbval-portable reproduce notebooks bench publish clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock scripts/setup.sh
	PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/setup.sh
	touch $@

# Rewrite requirements.lock after a change to pyproject.toml (needs PyPI); UPGRADE=1 moves every pin to
# the newest versions pyproject allows. Commit the lock with the change.
lock:
	PYTHON=$(PYTHON) bash scripts/lock.sh

# Every notebook on the offline laptop profile, then the book in _build/html.
book: setup
	$(CWL) reproduce --profile laptop

# Unit and property tests, then nbval on the committed (smoke-profile) notebooks, twice: as this machine
# computes, and with ATen's scalar kernels on one thread (another kernel family and summation order), so a
# check that holds only on the machine that refreshed the notebooks fails here, not for a user.
test: setup unit nbval nbval-portable

unit: setup
	$(PY) -m pytest tests -q

nbval: setup
	$(NBVAL)

nbval-portable: setup
	ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1 $(NBVAL)

# Re-execute the committed notebooks in place with their own (smoke) parameters; record their check references.
notebooks: setup
	$(CWL) refresh

reproduce: setup
	$(CWL) reproduce --profile $(or $(PROFILE),laptop)

# Push the book `make book` built to the branch GitHub Pages serves (ghp-import, force-pushed).
PAGES_REMOTE ?= origin
PAGES_BRANCH ?= gh-pages
publish: setup
	$(CWL) publish --remote $(PAGES_REMOTE) --branch $(PAGES_BRANCH)

bench: setup
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf _build
