#!/usr/bin/env bash
# Installs a sula .deb into a scratch root (dpkg -x: no root rights, no container) and runs
# it from a clean environment, with no virtualenv and no LD_LIBRARY_PATH: the version line,
# a phantom, `sula info`, and one epoch of VAE training on libtorch.
#
#   packaging/check-deb.sh dist/sula_0.1.0_amd64.deb
set -euo pipefail
deb=$1
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
dpkg -x "$deb" "$scratch/root"
sula=$scratch/root/usr/bin/sula
run() { env -i HOME="$scratch" PATH=/usr/bin:/bin "$sula" "$@"; }

echo "== libraries (all from the package or the system)"
env -i PATH=/usr/bin:/bin ldd "$sula" | grep -E 'torch|c10|gomp|cud|not found' || true
if env -i PATH=/usr/bin:/bin ldd "$sula" | grep -E 'not found|\.venv'; then
    echo "a library is missing or comes from the development virtualenv" >&2
    exit 1
fi
echo "== sula --version"
run --version
echo "== phantom, info, one VAE epoch"
run phantom --count 8 --size 32 --out "$scratch/phantom" >/dev/null
run info "$scratch/phantom" | head -n 3
run train-vae --data "$scratch/phantom" --size 32 --epochs 1 --device cpu \
    --out "$scratch/vae.safetensors" | tail -n 1
desktop-file-validate "$scratch/root/usr/share/applications/sula.desktop" 2>/dev/null || true
echo "ok: $deb runs without the development environment"
