# Mandate as a container image. Not built in CI (no container engine runs there); what CI checks
# is that the tarball this copies in installs and serves (test/deploy/package.test.ts) and that
# the Kubernetes manifests agree with this file (test/deploy/kubernetes.test.ts).
#   docker build -t mandate:0.1.0 .
#   docker run --rm -p 9191:9191 --read-only mandate:0.1.0 serve --listen 0.0.0.0:9191

# Build: compile the TypeScript and pack what package.json "files" ships.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --ignore-scripts
COPY src ./src
COPY proto ./proto
COPY examples ./examples
COPY README.md LICENSE ./
RUN npx tsc -p . && npm pack --ignore-scripts && mv mandate-*.tgz /mandate.tgz

# Run: production dependencies only, a non-root user, nothing written at run time (the root
# filesystem can be mounted read-only; task signing keys come from a mounted Secret).
FROM node:20-bookworm-slim
ENV NODE_ENV=production
# Memory bounded for a container limit (docs/performance.md, Memory), at 10,000 policies and
# 1,000 Check/s: glibc malloc takes large blocks from mmap (returned when freed) with two arenas
# instead of one per thread; V8 grows the old generation by 25% over what is live before it
# collects (its default lets it grow further while the heap is large) and keeps each young
# semi-space at 8 MB. RSS stays at 193-195 MB over 3 minutes (default flags: 246-272 MB after 1
# minute and still growing), for 10-17% more CPU per request. Drop the two flags from the
# ENTRYPOINT to trade memory back for CPU.
ENV MALLOC_MMAP_THRESHOLD_=131072 MALLOC_ARENA_MAX=2
WORKDIR /opt/mandate
COPY --from=build /mandate.tgz /tmp/mandate.tgz
RUN npm install --omit=dev --ignore-scripts --no-audit --no-fund --prefix /opt/mandate /tmp/mandate.tgz \
 && rm /tmp/mandate.tgz && npm cache clean --force
USER node
EXPOSE 9191 9192
# The gRPC health service, as Envoy and Kubernetes see it.
HEALTHCHECK --interval=10s --timeout=4s --start-period=20s --retries=3 \
  CMD ["node", "/opt/mandate/node_modules/mandate/dist/src/main.js", "health", "--server", "127.0.0.1:9191"]
ENTRYPOINT ["node", "--max-semi-space-size=8", "--heap-growing-percent=25", "/opt/mandate/node_modules/mandate/dist/src/main.js"]
CMD ["serve", "--listen", "0.0.0.0:9191"]
