VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test demo lint format bench bench-index bench-train

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: install
	$(PY) -m pytest tests -q --durations=10

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

bench-train: install
	$(PY) benchmarks/train_step.py
