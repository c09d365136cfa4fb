# Kiln's image: Node.js 20, bubblewrap (the sandbox of app instances, tasks and staging), git (git-URL buildpacks)
# and setpriv (util-linux, one uid per app when run as root). Kiln runs from its TypeScript sources through tsx,
# as `npm start` does, so there is no build step. Build: `docker build -t kiln .`; deploy/ runs it.
FROM node:20-bookworm-slim AS deps
WORKDIR /opt/kiln
# better-sqlite3 downloads a prebuilt binary, and compiles when none fits.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap git ca-certificates util-linux tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 kiln \
 && useradd --uid 10001 --gid kiln --home-dir /var/lib/kiln --create-home kiln \
 && mkdir -p /var/lib/kiln-shared && chown kiln:kiln /var/lib/kiln-shared
WORKDIR /opt/kiln
COPY --from=deps /opt/kiln/node_modules ./node_modules
COPY package.json package-lock.json tsconfig.json ./
COPY bin ./bin
COPY src ./src
COPY migrations ./migrations
COPY docs ./docs
COPY crds ./crds
COPY examples ./examples
ENV NODE_ENV=production \
    PORT=9000 \
    HOST=0.0.0.0 \
    KILN_DATA_DIR=/var/lib/kiln
USER 10001:10001
EXPOSE 9000
# tini forwards SIGTERM to Kiln (which stops its controllers before it lets the leadership go) and reaps orphans.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "--import", "tsx", "src/main.ts", "serve"]
