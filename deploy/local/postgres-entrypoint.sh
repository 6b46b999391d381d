#!/bin/sh
# Entrypoint of the local PostgreSQL image (deploy/local/postgres.Dockerfile).
# On an empty data folder: a cluster whose superuser is POSTGRES_USER with
# POSTGRES_PASSWORD, or the contents of the file POSTGRES_PASSWORD_FILE names
# (password logins over TCP, scram-sha-256), the database
# POSTGRES_DB, then the scripts in /docker-entrypoint-initdb.d (*.sql, *.sh) once.
# Then the server, listening on every address; extra arguments go to it.
set -eu
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

# Written once everything below has run: a cluster without it was left half made.
done_marker=$PGDATA/selfhelp-initialised
if [ -s "$PGDATA/PG_VERSION" ] && [ ! -e "$done_marker" ]; then
  echo "postgres-entrypoint: $PGDATA holds a cluster whose set-up did not finish;" \
    "remove the volume and start again" >&2
  exit 1
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  # As the official image: the password may come from a file (a secret).
  if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
    POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE")
  fi
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE must be set for a new cluster}"
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
  touch "$done_marker"
fi

exec postgres -c listen_addresses='*' "$@"
