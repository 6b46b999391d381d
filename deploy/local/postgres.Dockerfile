# PostgreSQL for deployments built without a registry (deploy/local-images.sh):
# Debian's `postgresql` on the Debian base local-images.sh makes, started by an
# entrypoint that keeps the part of the official image's contract compose uses
# (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, /docker-entrypoint-initdb.d).
#
# Build context: deploy/local/.
ARG BASE=selfhelp-base:bookworm
FROM ${BASE}
ENV DEBIAN_FRONTEND=noninteractive
# No cluster from the package: the entrypoint makes one in the data volume.
RUN mkdir -p /etc/postgresql-common \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf \
 && apt-get update \
 && apt-get install -y --no-install-recommends -o Dpkg::Options::=--force-confold postgresql \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && ln -s "$(ls -d /usr/lib/postgresql/*/bin | tail -n1)" /usr/lib/postgresql/bin \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown postgres:postgres /var/lib/postgresql/data /var/run/postgresql \
 && chmod 0700 /var/lib/postgresql/data
ENV PATH=/usr/lib/postgresql/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
USER postgres
VOLUME ["/var/lib/postgresql/data"]
EXPOSE 5432
# Fast shutdown: end sessions, checkpoint, exit (the official image does the same).
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]
