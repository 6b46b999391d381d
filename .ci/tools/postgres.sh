#!/usr/bin/env bash
# Makes a local PostgreSQL answer on 127.0.0.1:5432 for the tests, from nothing if
# need be: installs Debian's `postgresql` when it is missing, creates a cluster when
# there is none, starts it, and gives the `postgres` role a password made fresh for
# this run. Prints the URL to use as TEST_DATABASE_URL on its last line.
#
# Needs root (CI runs as root). Usage: url=$(bash .ci/tools/postgres.sh | tail -n1)
set -euo pipefail

say() { echo "postgres: $*" >&2; }

if ! command -v pg_lsclusters >/dev/null || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  say "PostgreSQL is not installed; installing Debian's postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi

version=$(ls /usr/lib/postgresql | sort -V | tail -n1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$version main"; then
  say "no cluster for PostgreSQL $version; creating one"
  pg_createcluster "$version" main >&2
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  say "starting cluster $version/main"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2
fi
for _ in $(seq 1 60); do
  pg_isready -q -h 127.0.0.1 -p 5432 && break
  sleep 0.5
done
pg_isready -h 127.0.0.1 -p 5432 >&2

# TLS, which the tests of connections over TLS require (tests/tests/tls.rs): on
# by default in Debian's clusters with the machine's self-signed certificate;
# turned on here when an older cluster has it off.
ssl=$(cd / && su postgres -c "psql -Atq -c 'SHOW ssl'")
if [ "$ssl" != on ]; then
  say "turning TLS on for cluster $version/main"
  [ -r /etc/ssl/certs/ssl-cert-snakeoil.pem ] || make-ssl-cert generate-default-snakeoil --force-overwrite >&2
  pg_conftool "$version" main set ssl on >&2
  pg_conftool "$version" main set ssl_cert_file /etc/ssl/certs/ssl-cert-snakeoil.pem >&2
  pg_conftool "$version" main set ssl_key_file /etc/ssl/private/ssl-cert-snakeoil.key >&2
  pg_ctlcluster --skip-systemctl-redirect "$version" main restart >&2
  for _ in $(seq 1 60); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 0.5
  done
fi
cert=$(cd / && su postgres -c "psql -Atq -c 'SHOW ssl_cert_file'")
[ -r "$cert" ] || { say "the server's certificate $cert cannot be read"; exit 1; }
say "TLS on, certificate $cert"

# A password made for this run: nothing committed opens the database. Local peer
# authentication (as the postgres system user) sets it.
password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
# From / so that psql, run as postgres, need not read the caller's folder.
(cd / && su postgres -c "psql -q -v ON_ERROR_STOP=1 -c \"ALTER ROLE postgres PASSWORD '$password'\"") >&2
say "ready on 127.0.0.1:5432"
echo "postgres://postgres:$password@127.0.0.1:5432/postgres"
