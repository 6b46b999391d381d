#!/bin/sh
# The NATS container's entrypoint in deploy/compose.yaml: sets each user's
# password, which accounts.conf names $<USER>_NATS_PASSWORD, from the file
# `selfhelp secrets init` made in the secrets volume, then runs nats-server
# with the arguments given. NATS resolves such names from the environment; a
# missing file stops the start here, naming it.
set -eu
dir=${SELFHELP_SECRETS_DIR:-/run/selfhelp-secrets}
read_secret() {
  if [ ! -s "$dir/$1" ]; then
    echo "with-generated-passwords: $dir/$1 is missing or empty" >&2
    exit 1
  fi
  value=$(cat "$dir/$1")
  case "$value" in
    *'"'* | *'\'*)
      echo "with-generated-passwords: $dir/$1 may not hold a \" or a \\" >&2
      exit 1
      ;;
  esac
  # NATS reads a variable's value as configuration: quoted, it is always the
  # string itself (unquoted, a password such as 6e12ab… reads as a number and
  # the server refuses to start).
  printf '"%s"' "$value"
}
LISTINGS_NATS_PASSWORD=$(read_secret listings-nats-password)
MEMBERSHIP_NATS_PASSWORD=$(read_secret membership-nats-password)
NOTIFICATIONS_NATS_PASSWORD=$(read_secret notifications-nats-password)
GATEWAY_NATS_PASSWORD=$(read_secret gateway-nats-password)
OUTSIDE_NATS_PASSWORD=$(read_secret outside-nats-password)
OPERATOR_NATS_PASSWORD=$(read_secret operator-nats-password)
export LISTINGS_NATS_PASSWORD MEMBERSHIP_NATS_PASSWORD NOTIFICATIONS_NATS_PASSWORD GATEWAY_NATS_PASSWORD OUTSIDE_NATS_PASSWORD OPERATOR_NATS_PASSWORD
exec nats-server "$@"
