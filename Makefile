# Two commands matter: `make serve` and `make test`. Both install into .venv first if needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch comes from here, at the version requirements.txt pins: PyPI's Linux wheel bundles CUDA (GBs).
# One retry: where this index is unreachable, a mirror configured for pip answers without a wait.
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu

.PHONY: install serve test lint typecheck pytest bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --retries 1 --index-url $(TORCH_INDEX_URL) \
		"$$(grep -E '^torch==' requirements.txt)"
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP) ## create .venv and install runtime + dev dependencies (idempotent)

serve: $(STAMP) ## start gunicorn on port 5001 with the embedded defaults
	$(VENV)/bin/gunicorn -c gunicorn.conf.py wsgi:app

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(VENV)/bin/pytest

test: lint typecheck pytest ## install, then lint + type-check + the whole test suite

bench: $(STAMP) ## CPU benchmarks (prints tables and JSON lines)
	$(PY) -m benchmarks.predictor_speed

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Model registry (python -m kronos_integration; model ids, revisions and HF_TOKEN from the environment).
.PHONY: download model-info predict-csv

download: $(STAMP) ## pre-fetch model + tokenizer into the Hugging Face cache (HF_HOME)
	$(PY) -m kronos_integration download

model-info: $(STAMP) ## what the service would load, from where, on which device
	$(PY) -m kronos_integration info

predict-csv: $(STAMP) ## forecast a CSV of candles: make predict-csv CSV=file.csv [PLOT=out.png]
	$(PY) -m kronos_integration predict $(CSV) $(if $(PLOT),--plot $(PLOT))
