#!/bin/sh
# A base image for kubeflow/Dockerfile without Docker Hub: Debian bookworm from Debian's archive
# (debootstrap) with a Python 3.10 copied in from this machine, imported into Docker.
#
#   sudo kubeflow/base_image.sh [TAG]          # default TAG: blindspot-base:bookworm-py3.10
#   make image BASE_IMAGE=blindspot-base:bookworm-py3.10
#
# Needs root (debootstrap, chroot), debootstrap, docker with a running daemon, and a Python 3.10
# built for Debian bookworm (glibc 2.36) or older: PYTHON310 (default: python3.10 on PATH, else
# pyenv's newest 3.10). Its whole installation prefix is copied to /usr/local in the image, so
# it should hold nothing but Python, pip and setuptools (check with `PYTHON310 -m pip list`):
# kubeflow/Dockerfile runs `pip check` over everything installed. DEBIAN_MIRROR: another Debian
# archive. CA_BUNDLE: a CA bundle for pip inside the build (behind a TLS-intercepting proxy).
set -eu

TAG=${1:-blindspot-base:bookworm-py3.10}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

fail() { echo "error: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root (debootstrap and chroot need it): sudo $0 $*"
command -v debootstrap >/dev/null || fail "debootstrap not found: apt-get install debootstrap"
command -v docker >/dev/null || fail "docker not found: apt-get install docker.io"
docker info >/dev/null 2>&1 || fail "the Docker daemon is not running: start it (e.g. dockerd &)"

is310() { "$1" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; }
if [ -z "${PYTHON310:-}" ]; then
  for candidate in \
      "$(ls -d "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.10.*/bin/python 2>/dev/null | sort -V | tail -1)" \
      "$(command -v python3.10 || true)"; do
    if [ -n "$candidate" ] && is310 "$candidate"; then PYTHON310=$candidate; break; fi
  done
fi
[ -n "${PYTHON310:-}" ] || fail "no Python 3.10 found: pass PYTHON310=/path/to/python3.10"
is310 "$PYTHON310" || fail "$PYTHON310 is not Python 3.10 (or does not start)"
PREFIX=$("$PYTHON310" -c 'import sys; print(sys.base_prefix)')

ROOTFS=$(mktemp -d /tmp/blindspot-rootfs.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
echo "debootstrap bookworm into $ROOTFS ($MIRROR) ..."
debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" >/dev/null
# The shared libraries CPython's modules link to (ssl, ctypes, sqlite3, bz2, lzma, readline,
# curses, dbm, uuid); no compiler here: the Dockerfile's build stage installs its own.
chroot "$ROOTFS" apt-get install -y --no-install-recommends ca-certificates libssl3 libffi8 \
  libsqlite3-0 libbz2-1.0 liblzma5 zlib1g libreadline8 libncursesw6 libgdbm6 libuuid1 >/dev/null
chroot "$ROOTFS" apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/*

echo "Python 3.10 from $PREFIX into /usr/local ..."
cp -a "$PREFIX/." "$ROOTFS/usr/local/"
# `python` on PATH, pip as a module (the copied pip scripts name the old prefix in their #!).
ln -sf python3.10 "$ROOTFS/usr/local/bin/python"
rm -f "$ROOTFS"/usr/local/bin/pip "$ROOTFS"/usr/local/bin/pip3 "$ROOTFS"/usr/local/bin/pip3.10
# libpython3.10.so: found through the loader cache, whatever rpath the build recorded.
chroot "$ROOTFS" ldconfig
if [ -n "${CA_BUNDLE:-}" ]; then
  cp "$CA_BUNDLE" "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
fi
chroot "$ROOTFS" /usr/bin/env PATH=/usr/local/bin:/usr/bin:/bin python -c \
  'import sys, ssl, sqlite3, ctypes, bz2, lzma, zlib, pip; assert sys.version_info[:2] == (3, 10)' \
  || fail "the Python copied into the image does not start or lacks a module (see above)"

echo "docker import $TAG ..."
set --
[ -z "${CA_BUNDLE:-}" ] || set -- --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt'
tar -C "$ROOTFS" -c . | docker import \
  --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' "$@" \
  --change 'CMD ["python"]' - "$TAG" >/dev/null
docker run --rm "$TAG" python -c 'import sys; print("ok:", sys.version.split()[0])'
echo "built $TAG: make image BASE_IMAGE=$TAG"
