# Redis for compose, from Debian's redis-server: what the official redis image gives compose —
# `redis-server` on 6379 for every address of the container, data in /data (the working
# directory), redis-cli for the healthcheck — made from Debian packages for the air-gapped build (tools/containers/base-images.sh).
ARG DEBIAN_IMAGE=debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
# As the official image: the command is `redis-server [options]` (compose passes its own), and
# protected mode is off because clients come from other containers; the network is the boundary.
CMD ["redis-server", "--protected-mode", "no"]
