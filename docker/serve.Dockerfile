# syntax=docker/dockerfile:1
# Slipway inference service: the same image runs on ECS Fargate (MODEL_URI set by the rollout)
# and as a SageMaker hosting container (`docker run <image> serve`, model in /opt/ml/model).
# Build from the repository root: docker build -f docker/serve.Dockerfile -t slipway-inference .
ARG NODE_IMAGE=node:22-slim

# ---- build: compile TypeScript to dist/ ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- runtime: production dependencies + compiled code only ----
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    PORT=8080
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev && npm cache clean --force
COPY --from=build /app/dist ./dist
# SageMaker hosting runs the container as it is configured; it only needs /opt/ml/model to be
# readable, so the service runs as the image's unprivileged `node` user everywhere.
USER node
EXPOSE 8080
# /ping is 200 once the model is loaded and warmed (or MODEL_URI=none); the port follows the same
# precedence as the server (SAGEMAKER_BIND_TO_PORT, then PORT).
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.SAGEMAKER_BIND_TO_PORT || process.env.PORT || 8080) + '/ping').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# The node flags are SERVE_NODE_FLAGS (src/serve/config.ts), which says why; a test keeps the two equal.
ENTRYPOINT ["node", "--initial-old-space-size=64", "dist/cli/main.js"]
CMD ["serve"]
