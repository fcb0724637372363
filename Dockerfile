# syntax=docker/dockerfile:1
# The qembed API image. CPU by default; `--build-arg VARIANT=cuda` adds onnxruntime's CUDA
# provider and the CUDA 13 libraries it loads, taken from PyPI wheels by
# scripts/install-cuda-providers (onnxruntime-node's own ONNXRUNTIME_NODE_INSTALL=cuda12 fetches
# them from NuGet, which hosts that reach only package registries cannot).
# Model bundles are not baked in: mount them at /models (docker/compose.yaml does).
ARG VARIANT=cpu

# --- build: compile TypeScript and install production dependencies --------------------------
FROM node:20-bookworm AS build
ARG VARIANT
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# better-sqlite3 compiles against these headers when no prebuilt binary can be fetched.
RUN ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# The web console (console/ → dist/console/, bundled by esbuild; served at /console/).
COPY console ./console
COPY scripts/build-console.mjs ./scripts/
RUN npm run build && npm prune --omit=dev
# The CUDA variant: ~2 GB of libraries beside onnxruntime-node's (docs/deploy.md). The wheels
# (~1.3 GB, checked against scripts/cuda-providers.lock) stay in a BuildKit cache between builds.
COPY scripts/install-cuda-providers scripts/cuda-providers.lock ./scripts/
RUN --mount=type=cache,target=/var/cache/qembed-cuda-wheels \
    if [ "$VARIANT" = "cuda" ]; then \
      apt-get update && apt-get install -y --no-install-recommends python3 python3-pip \
      && python3 scripts/install-cuda-providers --cache /var/cache/qembed-cuda-wheels; \
    fi

# --- runtime bases -------------------------------------------------------------------------
# On the CPU the API serves the faster of the float32 and int8-weight encoders on the machine it
# runs on, measured at its first start (QEMBED_MODEL_DIR=auto, docs/encoder-quantization.md); the
# CUDA image keeps the float32 bundle (int8 MatMulInteger is a CPU kernel).
FROM node:20-bookworm-slim AS base-cpu
ENV QEMBED_MODEL_DIR=auto \
    QEMBED_ENCODER_CANDIDATES=/models/default,/models/default-int8

# No CUDA base image: the CUDA libraries travel in node_modules, and the driver's libcuda.so.1 is
# mounted by the NVIDIA Container Toolkit when the container is started with GPUs, for the
# capabilities named here (it needs a driver for CUDA 13: 580 or newer).
FROM node:20-bookworm-slim AS base-cuda
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    QEMBED_EXECUTION_PROVIDER=cuda \
    QEMBED_MODEL_DIR=/models/default

# --- runtime ---------------------------------------------------------------------------------
FROM base-${VARIANT} AS runtime
WORKDIR /app
ENV NODE_ENV=production \
    QEMBED_HOST=0.0.0.0 \
    QEMBED_PORT=8080 \
    QEMBED_DATA_DIR=/data \
    QEMBED_MODELS_DIR=/models
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY migrations ./migrations
COPY openapi ./openapi
RUN groupadd --system --gid 10001 qembed 2>/dev/null || addgroup --system --gid 10001 qembed; \
    useradd --system --uid 10001 --gid 10001 --no-create-home qembed 2>/dev/null || adduser --system --uid 10001 --ingroup qembed qembed; \
    mkdir -p /data /models && chown -R 10001:10001 /data /models
USER 10001:10001
EXPOSE 8080
VOLUME ["/data", "/models"]
# No curl in the image: Node's own fetch checks /health.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.QEMBED_PORT||8080)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "dist/src/server.js"]
