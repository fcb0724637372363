# syntax=docker/dockerfile:1
# The qembed companion worker: exports model bundles, calibrates them and runs training jobs.
# worker/requirements.lock pins PyTorch with its CUDA wheels, so the same image trains on a GPU
# (compose profile `gpu`) or on the CPU.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY worker/requirements.lock ./requirements.lock
RUN pip install --requirement requirements.lock
COPY worker/ ./worker/
# The JSON Schemas the worker validates manifests and job specs against, beside worker/ as in
# the repository (qembed_worker/contracts.py).
COPY contracts/ ./contracts/
RUN groupadd --system --gid 10001 qembed && useradd --system --uid 10001 --gid 10001 --create-home qembed \
 && mkdir -p /data /models && chown -R 10001:10001 /data /models
USER 10001:10001
WORKDIR /app/worker
VOLUME ["/data", "/models"]
ENTRYPOINT ["python", "-m", "qembed_worker"]
CMD ["--help"]
