#!/usr/bin/env bash
# Installs lmes and everything it needs on a fresh Debian 12 machine, idempotently:
#   - Debian packages: libvirt and QEMU for the lab of real hosts, libvirt-dev to build the
#     Python binding, gcc to build the lab's guest kernel and (with python3-dev) the log
#     reader's compiled scan, PostgreSQL for the shared store's tests, Chromium to check the
#     HTML report;
#   - a virtual environment in .venv with lmes (editable) and its libvirt, notebook and dev extras.
# Run as root (or with sudo available). Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(
  qemu-system-x86 qemu-utils libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
  libvirt-dev pkg-config gcc libc6-dev python3-dev binutils iproute2 util-linux
  postgresql chromium python3-venv
)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install: Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.lmes-installed
# pip builds the log reader's compiled scan (setup.py) in place, so its source counts too
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ] \
  || [ logs_parsers/_linescan.c -nt "$stamp" ]; then
  echo "install: Python packages into .venv"
  .venv/bin/python -m pip install -q --upgrade pip setuptools wheel
  .venv/bin/python -m pip install -q -e ".[libvirt,notebooks,sweep,dev]"
  .venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
  touch "$stamp"
fi
