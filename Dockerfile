# syntax=docker/dockerfile:1
# Kronos forecasting service. The image holds inference code only: weights come from the Hugging
# Face Hub at start-up into HF_HOME (mount a volume there to keep them), unless PRELOAD_MODELS=1
# bakes them in at build time.
#
#   docker build -t kronos-ai-service .                                    # CPU torch
#   docker build --build-arg TORCH_INDEX_URL=https://pypi.org/simple \
#                -t kronos-ai-service:gpu .                                # CUDA torch (PyPI's build)
#   docker build --build-arg PRELOAD_MODELS=1 \
#                --secret id=hf_token,env=HF_TOKEN -t kronos-ai-service .  # weights in the image
FROM python:3.12-slim

# Where pip takes torch from: the CPU wheels by default; PyPI (CUDA bundled) or a
# https://download.pytorch.org/whl/cuXXX index for GPU images.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# 1 = run `python -m kronos_integration download` during the build (model ids and revisions below).
ARG PRELOAD_MODELS=0
# (DL3064 flags names containing "TOKEN": these are the tokenizer's id and revision, not secrets.)
ARG KRONOS_MODEL_ID=NeoQuasar/Kronos-small
# hadolint ignore=DL3064
ARG KRONOS_TOKENIZER_ID=NeoQuasar/Kronos-Tokenizer-base
ARG KRONOS_MODEL_REVISION=
# hadolint ignore=DL3064
ARG KRONOS_TOKENIZER_REVISION=

# hadolint ignore=DL3064
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/cache/huggingface \
    HF_HUB_DISABLE_TELEMETRY=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    KRONOS_HOST=0.0.0.0 \
    KRONOS_MODEL_ID=${KRONOS_MODEL_ID} \
    KRONOS_TOKENIZER_ID=${KRONOS_TOKENIZER_ID} \
    KRONOS_MODEL_REVISION=${KRONOS_MODEL_REVISION} \
    KRONOS_TOKENIZER_REVISION=${KRONOS_TOKENIZER_REVISION}

RUN groupadd --gid 10001 kronos \
    && useradd --uid 10001 --gid kronos --create-home --shell /usr/sbin/nologin kronos \
    && mkdir -p /cache/huggingface \
    && chown kronos:kronos /cache/huggingface

WORKDIR /srv/kronos

# torch first, from the chosen index, at the version requirements.txt pins; then the rest.
COPY requirements.txt ./
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" \
        "$(grep -E '^torch==' requirements.txt)" \
    && pip install --no-cache-dir -r requirements.txt

COPY app ./app
COPY kronos_integration ./kronos_integration
COPY wsgi.py gunicorn.conf.py ./

USER 10001:10001

# The token is a build secret, so it never lands in a layer.
RUN --mount=type=secret,id=hf_token,uid=10001 \
    if [ "${PRELOAD_MODELS}" = "1" ]; then \
        HF_TOKEN="$(cat /run/secrets/hf_token 2>/dev/null || true)" \
        python -m kronos_integration download; \
    fi

EXPOSE 5001

# /health/ready is 200 only once this container's workers have loaded their forecaster; loading
# may download weights on the first start, hence the long start period.
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/health/ready' % os.environ.get('KRONOS_PORT', '5001'), timeout=4)"]

CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
