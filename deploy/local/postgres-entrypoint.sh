#!/bin/sh
# Entrypoint of the local PostgreSQL image (deploy/local/postgres.Dockerfile).
# On an empty data folder: a cluster whose superuser is POSTGRES_USER with
# POSTGRES_PASSWORD (password logins over TCP, scram-sha-256), the database
# POSTGRES_DB, then the scripts in /docker-entrypoint-initdb.d (*.sql, *.sh) once.
# Then the server, listening on every address; extra arguments go to it.
set -eu
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "postgres-entrypoint: new cluster in $PGDATA (superuser $user, database $db)"
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb --username="$user" --pwfile="$pwfile" --encoding=UTF8 --no-locale \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  # Set up over the local socket only, so no client sees a half-made cluster.
  pg_ctl --wait --silent -o "-c listen_addresses=''" start
  if [ "$db" != postgres ]; then
    psql -v ON_ERROR_STOP=1 -q -U "$user" -d postgres -c "CREATE DATABASE \"$db\""
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sql) echo "postgres-entrypoint: running $f"; psql -v ON_ERROR_STOP=1 -q -U "$user" -d "$db" -f "$f" ;;
      *.sh) echo "postgres-entrypoint: running $f"; . "$f" ;;
    esac
  done
  pg_ctl --wait --silent -m fast stop
fi

exec postgres -c listen_addresses='*' "$@"
