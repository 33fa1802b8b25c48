# Two commands matter: `make serve` and `make test`. Both install into .venv first if needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev
# torch comes from here, at the version requirements.txt pins: PyPI's Linux wheel bundles CUDA (GBs).
# One retry: where this index is unreachable, a mirror configured for pip answers without a wait.
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu

.PHONY: install install-runtime serve test lint typecheck pytest bench clean

# The service's pinned runtime, and the package itself (editable: the `kronos` command).
$(RUNTIME): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --retries 1 --index-url $(TORCH_INDEX_URL) \
		"$$(grep -E '^torch==' requirements.txt)"
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(RUNTIME)

# Test, lint and type-check tools on top.
$(DEV): $(RUNTIME) requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(DEV)

install-runtime: $(RUNTIME) ## create .venv with the runtime dependencies only (what make serve needs)

install: $(DEV) ## create .venv with runtime + dev dependencies (idempotent)

serve: $(RUNTIME) ## start gunicorn on 127.0.0.1:5001 with the embedded defaults (KRONOS_HOST to change)
	$(VENV)/bin/gunicorn -c gunicorn.conf.py wsgi:app

.PHONY: serve-proxied
serve-proxied: $(RUNTIME) ## the system nginx on KRONOS_PORT in front of gunicorn on a unix socket
	$(PY) -m deploy.nginx.proxied

lint: $(DEV)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(DEV)
	$(VENV)/bin/mypy

pytest: $(DEV)
	$(VENV)/bin/pytest

test: lint typecheck pytest ## install, then lint + type-check + the whole test suite

bench: $(RUNTIME) ## CPU benchmarks (prints tables and JSON lines)
	$(PY) -m benchmarks.predictor_speed

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Model registry (python -m kronos_integration; model ids, revisions and HF_TOKEN from the environment).
.PHONY: download model-info predict-csv

download: $(RUNTIME) ## pre-fetch model + tokenizer into the Hugging Face cache (HF_HOME)
	$(PY) -m kronos_integration download

model-info: $(RUNTIME) ## what the service would load, from where, on which device
	$(PY) -m kronos_integration info

predict-csv: $(RUNTIME) ## forecast a CSV of candles: make predict-csv CSV=file.csv [DAYS=5] [PLOT=out.png]
	$(VENV)/bin/kronos predict $(CSV) --horizon-days $(or $(DAYS),5) $(if $(PLOT),--plot $(PLOT))
