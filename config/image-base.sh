#!/bin/sh
# Builds localhost/evgrid-base:bookworm, a stand-in for python:3.11-slim made only from Debian's
# packages (Docker Hub is not reachable from this kind of machine), so `podman build` of the
# Dockerfile works here: `podman build --build-arg BASE=localhost/evgrid-base:bookworm .`
# Needs root, debootstrap and podman (`make image-deps` installs them). Idempotent.
set -eu
BASE=localhost/evgrid-base:bookworm
if podman image exists "$BASE"; then
    echo "==> $BASE present"
    exit 0
fi
# The Debian mirror this machine's apt already uses.
mirror=$(grep -h -o -E 'https?://[^ ]+/debian$' /etc/apt/sources.list \
    /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null | head -1)
[ -n "$mirror" ] || { echo "evgrid: no Debian mirror in /etc/apt/sources.list*" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
echo "==> debootstrap bookworm with python3 and pip into $root (about 2 minutes, once)"
debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates \
    bookworm "$root" "$mirror" >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; exit 1; }
rm -f "$root.log"
ln -sf python3 "$root/usr/bin/python"
# pip inside the build reaches PyPI the way this machine does: with its trust store.
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
echo "==> importing it as $BASE"
tar -C "$root" -c . | podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV PIP_BREAK_SYSTEM_PACKAGES=1' - "$BASE" >/dev/null
echo "    done"
