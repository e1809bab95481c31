//! Links libtorch so the `sula` binary runs from a fresh shell and finds CUDA when present.
//!
//! torch-sys exports the libtorch library directory as `DEP_TCH_LIBTORCH_LIB` (only to
//! direct dependants, hence the direct `torch-sys` dependency). We bake it in as an rpath,
//! and force-link `libtorch` (which pulls in `libtorch_cuda` in CUDA builds) with
//! `--no-as-needed`, because otherwise the linker drops the CUDA library that nothing
//! references by symbol and `Cuda::is_available()` reports false on a GPU machine.
//!
//! Packages (`packaging/build-deb.sh`) relocate libtorch next to the binary:
//! - `SULA_RPATH` replaces the rpath (e.g. `$ORIGIN/../lib/sula`). It is written as
//!   DT_RPATH, not DT_RUNPATH, because only DT_RPATH also serves the libraries' own
//!   dependencies (libtorch_cpu needs libc10 and libgomp and declares no rpath itself).
//! - `SULA_TORCH_CUDA=0` leaves `libtorch_cuda` out, for the CPU package.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SULA_RPATH");
    println!("cargo:rerun-if-env-changed=SULA_TORCH_CUDA");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "linux" {
        return;
    }
    let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    let lib = lib.to_string_lossy();
    match std::env::var("SULA_RPATH") {
        Ok(rpath) if !rpath.is_empty() => {
            println!("cargo:rustc-link-arg=-Wl,--disable-new-dtags,-rpath,{rpath}");
        }
        _ => println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}"),
    }
    if std::env::var("SULA_TORCH_CUDA").is_ok_and(|v| v == "0") {
        return;
    }
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    if std::path::Path::new(&*lib)
        .join("libtorch_cuda.so")
        .exists()
    {
        println!("cargo:rustc-link-arg=-ltorch_cuda");
    }
    println!("cargo:rustc-link-arg=-ltorch");
}
