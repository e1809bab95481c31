#!/usr/bin/env bash
# Builds a release `sula` against another libtorch than the project's 2.13.0, for a lent
# GPU machine that has only its own PyTorch (2.11.0 there) and no package registry.
#
#   scripts/build-for-device.sh [TORCH_VERSION]      # default 2.11.0
#
# Everything lands under .device/ (ignored by git), so that folder travels with `carry`:
#   .device/sula-torch-VERSION   stripped binary, links libtorch + libtorch_cuda by name
#   .device/run-on-device.sh     sets LD_LIBRARY_PATH to the machine's torch/lib and runs it
#
# What it does, once per version (later runs reuse it):
# 1. downloads the torch wheel from PyPI without its CUDA dependencies and unpacks
#    torch/include and torch/lib (the C++ headers and libraries are those of libtorch);
# 2. copies torch-sys 0.26.0 and replaces the body of every generated binding whose
#    operator this libtorch lacks (found by compiling the bindings against its headers)
#    with a `throw`: sula uses none of them, and calling one raises a Torch error;
# 3. builds a copy of the crate (so Cargo.lock is untouched) with that torch-sys patched
#    in, allowing the CUDA runtime libraries to be missing at link time (they are on the
#    GPU machine, found through LD_LIBRARY_PATH there).
set -euo pipefail
VERSION="${1:-2.11.0}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$ROOT/.device"
LIBTORCH="$WORK/libtorch-$VERSION"
SYS="$WORK/torch-sys-$VERSION"
COPY="$WORK/crate"
PIP="$ROOT/.venv/bin/pip"
mkdir -p "$WORK"

if [ ! -d "$LIBTORCH/lib" ]; then
    test -x "$PIP" || make -C "$ROOT" torch
    ls "$WORK"/wheels/torch-"$VERSION"-*.whl >/dev/null 2>&1 \
        || "$PIP" download --disable-pip-version-check -q --no-deps "torch==$VERSION" -d "$WORK/wheels"
    rm -rf "$WORK/unpacked"
    unzip -q -o "$WORK"/wheels/torch-"$VERSION"-*.whl 'torch/include/*' 'torch/lib/*' 'torch/share/*' \
        -d "$WORK/unpacked"
    mv "$WORK/unpacked/torch" "$LIBTORCH"
    rm -rf "$WORK/unpacked" "$WORK/wheels"
fi

if [ ! -f "$SYS/.patched" ]; then
    REGISTRY_COPY=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/torch-sys-0.26.0 | head -n1)
    rm -rf "$SYS"
    cp -r "$REGISTRY_COPY" "$SYS"
    # Compile, patch what failed, repeat: some errors only show once earlier ones are gone.
    for pass in 1 2 3 4 5; do
        echo "pass $pass: compiling the generated bindings against libtorch $VERSION…"
        if g++ -std=c++17 -O0 -w -fmax-errors=0 -D_GLIBCXX_USE_CXX11_ABI=1 -DGLOG_USE_GLOG_EXPORT \
            -I"$LIBTORCH/include" -I"$LIBTORCH/include/torch/csrc/api/include" \
            -c "$SYS/libtch/torch_api_generated.cpp" -o /dev/null 2>"$WORK/binding-errors-$VERSION.txt"; then
            break
        fi
        python3 "$ROOT/scripts/patch_torch_bindings.py" "$SYS/libtch/torch_api_generated.cpp" \
            "$WORK/binding-errors-$VERSION.txt" "$VERSION"
    done
    touch "$SYS/.patched"
fi

rm -rf "$COPY/src" "$COPY/assets"
mkdir -p "$COPY"
cp -r "$ROOT/src" "$ROOT/assets" "$ROOT/Cargo.toml" "$ROOT/Cargo.lock" "$ROOT/build.rs" "$COPY/"
mkdir -p "$COPY/packaging" && cp "$ROOT/packaging/sula.png" "$COPY/packaging/"
(
    cd "$COPY"
    unset LIBTORCH_USE_PYTORCH
    export LIBTORCH="$LIBTORCH" LIBTORCH_BYPASS_VERSION_CHECK=1 SULA_LIBTORCH_VERSION="$VERSION"
    export RUSTFLAGS="-C link-arg=-Wl,--allow-shlib-undefined"
    cargo build --release --bin sula --config "patch.crates-io.torch-sys.path=\"$SYS\""
)
cp "$COPY/target/release/sula" "$WORK/sula-torch-$VERSION"
strip "$WORK/sula-torch-$VERSION"
cat >"$WORK/run-on-device.sh" <<EOF
#!/usr/bin/env bash
# Runs the sula built by scripts/build-for-device.sh with the machine's own libtorch.
TORCH_LIB=\$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="\$TORCH_LIB:\${LD_LIBRARY_PATH:-}"
exec "\$(dirname "\$0")/sula-torch-$VERSION" "\$@"
EOF
chmod +x "$WORK/run-on-device.sh"
ls -la "$WORK/sula-torch-$VERSION"
