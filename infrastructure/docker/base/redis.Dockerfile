# Redis for compose, from Debian's redis-server: what the official redis image gives compose —
# `redis-server` on 6379 for every address of the container, data in /data, redis-cli for the
# healthcheck — made from Debian packages for the air-gapped build (tools/containers/base-images.sh).
ARG DEBIAN_IMAGE=debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
# protected-mode would refuse clients from other containers; the compose network is the boundary.
ENTRYPOINT ["redis-server", "--bind", "0.0.0.0", "::", "--protected-mode", "no", "--dir", "/data"]
