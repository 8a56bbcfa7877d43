# Training image: SageMaker runs `<image> train` with /opt/ml mounted (see ARCHITECTURE.md, "Training job").
# Build from the repository root:  docker build -f docker/train.Dockerfile -t slipway-training .
# Another trainer in the same image: set SLIPWAY_TRAIN_ENTRY=/app/dist/<path>.js (job Environment).

ARG NODE_IMAGE=node:22-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# Install scripts are not needed: tfjs-backend-wasm and onnxruntime-node ship their binaries in the package.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --ignore-scripts

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    SLIPWAY_JOB_ROOT=/opt/ml
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# SageMaker runs training containers as root by default and mounts /opt/ml; create it for local `docker run`.
RUN mkdir -p /opt/ml/input/config /opt/ml/input/data /opt/ml/model /opt/ml/output /opt/ml/checkpoints
# Exec form: node runs as PID 1 itself, so StopTrainingJob's SIGTERM reaches runTrainingJob's handler.
ENTRYPOINT ["node", "/app/dist/train/container-entry.js"]
CMD ["train"]
