#!/usr/bin/env bash
# Builds dist/sula_<version>_amd64.deb (CPU) or dist/sula-cuda_<version>_amd64.deb (CUDA):
# the sula binary in /usr/bin, the libtorch shared libraries it needs in /usr/lib/sula
# (found through an $ORIGIN-relative rpath, so no LD_LIBRARY_PATH and no virtualenv),
# the desktop entry and the icon.
#
#   packaging/build-deb.sh [cpu|cuda]        (default: cpu)
#
# libtorch comes from the project virtualenv (`make torch`: torch 2.13.0 from PyPI).
# Set LIBTORCH_LIB to another libtorch's lib/ folder to bundle that one instead (for
# example a CPU-only libtorch, which makes a much smaller CPU package).
set -euo pipefail

variant=${1:-cpu}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)

make torch >/dev/null
torch_lib=${LIBTORCH_LIB:-$(.venv/bin/python -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')}
site=$(cd "$torch_lib/../.." && pwd)

case $variant in
    cpu)
        package=sula
        rpath='$ORIGIN/../lib/sula'
        cuda=0
        ;;
    cuda)
        package=sula-cuda
        # libtorch_cuda's own RUNPATH is $ORIGIN/../../nvidia/*/lib: keep that layout.
        rpath='$ORIGIN/../lib/sula/torch/lib:$ORIGIN/../lib/sula/nvidia/cu13/lib'
        cuda=1
        ;;
    *)
        echo "usage: $0 [cpu|cuda]" >&2
        exit 2
        ;;
esac

echo "building sula $version ($variant) against $torch_lib"
SULA_RPATH=$rpath SULA_TORCH_CUDA=$cuda LIBTORCH_USE_PYTORCH=1 VIRTUAL_ENV="$root/.venv" \
    PATH="$root/.venv/bin:$PATH" cargo build --release --locked

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/${package}_${version}_amd64
install -D -m 755 target/release/sula "$stage/usr/bin/sula"
strip "$stage/usr/bin/sula"

libdir=$stage/usr/lib/sula
mkdir -p "$libdir"
if [ "$variant" = cpu ]; then
    # Exactly the libraries the binary loads (transitively) from the libtorch install.
    LD_LIBRARY_PATH="$torch_lib:$site/nvidia/cu13/lib" ldd "$stage/usr/bin/sula" |
        awk '/=> \// { print $3 }' |
        while read -r lib; do
            case $lib in
                "$site"/*) cp -L "$lib" "$libdir/" ;;
            esac
        done
else
    # libtorch loads cuDNN, cuBLAS and friends with dlopen, so ldd cannot list them all:
    # bundle libtorch and every NVIDIA runtime library of the wheel, in the wheel's layout.
    mkdir -p "$libdir/torch/lib"
    find "$torch_lib" -maxdepth 1 -name '*.so*' ! -name 'libtorch_python.so' \
        -exec cp -L {} "$libdir/torch/lib/" \;
    (cd "$site" && find nvidia -name '*.so*' -path '*/lib/*' -print0 |
        xargs -0 -I{} cp -L --parents {} "$libdir/")
fi
chmod 644 "$libdir"/*.so* 2>/dev/null || true

install -D -m 644 packaging/sula.desktop "$stage/usr/share/applications/sula.desktop"
install -D -m 644 packaging/sula.png "$stage/usr/share/icons/hicolor/256x256/apps/sula.png"
install -D -m 644 packaging/sula.svg "$stage/usr/share/icons/hicolor/scalable/apps/sula.svg"
install -D -m 644 README.md "$stage/usr/share/doc/$package/README.md"
cat LICENSE-MIT LICENSE-APACHE >"$work/copyright"
install -D -m 644 "$work/copyright" "$stage/usr/share/doc/$package/copyright"

installed_kb=$(du -sk "$stage/usr" | cut -f1)
mkdir -p "$stage/DEBIAN"
{
    echo "Package: $package"
    echo "Version: $version"
    echo "Architecture: amd64"
    echo "Maintainer: sula developers <sula@localhost>"
    echo "Installed-Size: $installed_kb"
    echo "Depends: libc6 (>= 2.28), libstdc++6, libgcc-s1"
    echo "Recommends: libvulkan1 | libegl1, libxkbcommon0, libwayland-client0, libx11-6, libxcursor1, libxi6, libxrandr2"
    if [ "$variant" = cuda ]; then
        echo "Provides: sula"
        echo "Conflicts: sula"
        echo "Replaces: sula"
    fi
    echo "Section: science"
    echo "Priority: optional"
    echo "Homepage: https://crates.io/crates/sula"
    echo "Description: suggestive labelling by adaptive latent-space sampling (IVUS)"
    echo " Trains a VAE on unannotated intravascular ultrasound cross-sections, moves latent"
    echo " points along the gradient of a stress regressor's loss, labels the harder samples"
    echo " with a finite-element plaque stress solver and shows it all: latent manifold,"
    echo " samples beside their stress maps, learning curves against a random baseline."
    echo " Bundles libtorch ($variant) in /usr/lib/sula."
} >"$stage/DEBIAN/control"

mkdir -p dist
deb=dist/${package}_${version}_amd64.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "wrote $deb: $(du -h "$deb" | cut -f1) packed, $((installed_kb / 1024)) MiB installed"

# target/release/sula is the development build again (virtualenv rpath, CUDA linked).
LIBTORCH_USE_PYTORCH=1 VIRTUAL_ENV="$root/.venv" PATH="$root/.venv/bin:$PATH" \
    cargo build --release --locked --quiet
