VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.docs-installed

.PHONY: install test test-slow test-all demo lint format bench bench-index bench-train bench-scale bench-serving bench-ray bench-documents docs

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The everyday tier: every test not marked slow (a few minutes on 2 cores).
test: install
	$(PY) -m pytest tests -q --durations=10 -m "not slow"

# The long end-to-end tests (real Ray clusters, CLI and server processes, PyLate's
# own suite and doctests, training on SciFact slices): CI runs them after `test`.
test-slow: install
	$(PY) -m pytest tests -q --durations=10 -m slow

test-all: test test-slow

demo: install
	$(PY) examples/demo.py $(ARGS)

lint: install
	$(VENV)/bin/ruff check pylate_clone tests examples benchmarks
	$(VENV)/bin/ruff format --check pylate_clone tests examples benchmarks

format: install
	$(VENV)/bin/ruff format pylate_clone tests examples benchmarks
	$(VENV)/bin/ruff check --fix pylate_clone tests examples benchmarks

bench: install
	$(PY) benchmarks/rerank.py
	$(PY) benchmarks/encode.py

# SciFact index build/search/recall: 30+ minutes, caches embeddings in benchmarks/.cache/.
bench-index: install
	$(PY) benchmarks/index.py

# Encoding throughput on a local Ray: 1 and 2 workers against one process.
bench-ray: install
	$(PY) benchmarks/ray_build.py $(ARGS)

bench-train: install
	$(PY) benchmarks/train_step.py

# 64 concurrent vs 64 sequential one-text requests to a real server (about a minute).
bench-serving: install
	$(PY) benchmarks/serving.py

# Filtered search per selectivity (ours and PyLate 1.6's subset=) and hybrid nDCG@10.
bench-documents: install
	$(PY) benchmarks/filtered.py --pylate-python $(PYLATE_PYTHON) $(ARGS)
	$(PY) benchmarks/hybrid.py

$(DOCS_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install -q -e ".[docs]"
	touch $(DOCS_STAMP)

# The documentation site, into site/. The build itself fetches nothing (no web
# fonts, no CDN); --strict turns any warning (a broken link...) into a failure.
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# SciFact 1x and 10x: PyLate 1.6.0 PLAID (its venv: PYLATE_PYTHON), our PLAID,
# Voyager and exact; hours on 2 cores, results cached per system in
# benchmarks/.cache/scale_results/ (ARGS="--scales 1 --systems exact,plaid").
# PyLate at 10x: ARGS="--scales 10 --systems pylate-plaid --query-step 4".
# 30x (~24M vectors, our systems only, streamed build): ARGS="--scales 30
# --systems plaid --query-step 4".
# Build PyLate's venv first: ../shared/tools/pylate_reference_venv.sh /tmp/pylate-1.6
PYLATE_PYTHON ?= /tmp/pylate-1.6/bin/python
bench-scale: install
	$(PY) benchmarks/index_scale.py --pylate-python $(PYLATE_PYTHON) $(ARGS)
	$(PY) benchmarks/engine_grid.py --scale 1
