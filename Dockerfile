# syntax=docker/dockerfile:1
#
# mtls-gateway: multi-stage image on Node 24 LTS. The runtime stage holds production dependencies
# and the compiled dist/ only, runs as the unprivileged `node` user (uid 1000), writes nothing to
# its filesystem (run it with a read-only root), and drains in-flight requests on SIGTERM (for
# server.drainDelay + server.drainTimeout, 0 + 25 s by default; give the orchestrator a longer
# grace period). Certificates, keys, CRLs and the config are mounted at run time and never baked
# in: see docs/deployment.md.
#
#   docker build -t mtls-gateway .
#   docker run --read-only -p 8443:8443 \
#     -v "$PWD/deploy/docker/gateway.yaml:/etc/mtls-gateway/gateway.yaml:ro" \
#     -v "$PWD/certs:/etc/mtls-gateway/certs:ro" mtls-gateway

ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
# --ignore-scripts skips `prepare` (the build) until the sources are in place; then build once.
RUN npm ci --ignore-scripts --no-audit --no-fund && npm run build

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    MTLS_GATEWAY_CONFIG=/etc/mtls-gateway/gateway.yaml \
    ADMIN_PORT=9901
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would run tsc, which is a dev dependency and is not installed here.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# Empty mount points owned by the runtime user, so that a fresh named volume mounted there inherits
# that owner (docker-compose's one-shot PKI service writes the development PKI into one).
RUN mkdir -p /etc/mtls-gateway/certs && chown -R node:node /etc/mtls-gateway
USER node
EXPOSE 8443
STOPSIGNAL SIGTERM
# Docker has one health state, and it gates `depends_on: condition: service_healthy`, so the check
# asks the admin listener's /readyz (200 only while the listener is up with a valid server
# certificate and usable CRLs, and not draining). The admin listener is plain HTTP on 127.0.0.1 by
# default (admin.listen), which is where this check runs: set ADMIN_PORT to admin.listen.port.
# The admin port is not EXPOSEd: publish it only deliberately.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.ADMIN_PORT||9901)+'/readyz',{signal:AbortSignal.timeout(2000)}).then(r=>process.exit(r.status===200?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["start"]
