#!/usr/bin/env bash
# Local Debian base image for the cifarlens images where Docker Hub cannot be reached:
# bookworm minbase + Python 3.11 (python3-venv) + CA certificates, from the Debian mirror apt already uses,
# imported as one layer. The Dockerfiles take it through their BASE_IMAGE build argument:
#
#   bash docker/make-base-image.sh [NAME]        # default cifarlens-base:bookworm; skips when NAME exists
#   FORCE=1 bash docker/make-base-image.sh       # rebuild
#   docker compose build --build-arg BASE_IMAGE=cifarlens-base:bookworm   (or CIFARLENS_BASE_IMAGE=..., see docker-compose.yml)
#
# Needs root (debootstrap) and a running Docker daemon. DEBIAN_MIRROR / DEBIAN_SECURITY_MIRROR override the
# mirrors found in apt's configuration.
set -euo pipefail

NAME=${1:-cifarlens-base:bookworm}
SUITE=bookworm

if [ -z "${FORCE:-}" ] && docker image inspect "$NAME" >/dev/null 2>&1; then
    echo "base image $NAME already exists (FORCE=1 rebuilds it)"
    exit 0
fi

# The mirrors apt on this machine is configured with (apt-cache policy lists "URL suite/component").
mirror_of() { apt-cache policy 2>/dev/null | awk -v want="$1/main" '$3 == want {print $2; exit}'; }
MIRROR=${DEBIAN_MIRROR:-$(mirror_of "$SUITE")}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-$(mirror_of "$SUITE-security")}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}

if ! command -v debootstrap >/dev/null 2>&1; then
    echo "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
fi

root=$(mktemp -d /tmp/cifarlens-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
start=$(date +%s)
echo "debootstrap $SUITE from $MIRROR into $root"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 \
    || { tail -n 30 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"

cat >"$root/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
SOURCES
# Same trimming as Debian's slim images: no apt caches, package lists, docs or man pages in the image.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'DPKG'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
DPKG

# This machine's CA bundle, which holds any CA that intercepts its TLS (pip in the builds must trust it), and
# pip told to use it (pip otherwise trusts only its own certifi copy).
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
tar -C "$root" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["/bin/bash"]' \
    - "$NAME" >/dev/null
echo "base image $NAME: $(docker image inspect -f '{{.Size}}' "$NAME" | awk '{printf "%.0f MB", $1/1e6}'), built in $(($(date +%s) - start)) s"
