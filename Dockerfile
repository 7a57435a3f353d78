# The lora-mpt image the Helm chart runs: Node 20 on CUDA 11.8 + cuDNN 8 (what
# @tensorflow/tfjs-node-gpu 4.22 links against). `npm ci` here installs tfjs-node-gpu, whose
# installer downloads libtensorflow: build this where that download is allowed.
# (Not built in this repository's CI: its machines have no container engine.)
FROM nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04

RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl python3 \
 && curl -fsSL https://deb.nodesource.com/setup_20.x | bash - \
 && apt-get install -y --no-install-recommends nodejs \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && node -e "require.resolve('@tensorflow/tfjs-node-gpu')" \
 || (echo 'tfjs-node-gpu did not install: the GPU backend would be missing' && exit 1)
COPY bin ./bin
COPY src ./src
COPY tsconfig.json ./

USER 1000
ENTRYPOINT ["node", "/app/bin/lora-mpt.mjs"]
