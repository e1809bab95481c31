//! Links libtorch so the `sula` binary runs from a fresh shell and finds CUDA when present.
//!
//! torch-sys exports the libtorch library directory as `DEP_TCH_LIBTORCH_LIB` (only to
//! direct dependants, hence the direct `torch-sys` dependency). We bake it in as an rpath,
//! and force-link `libtorch` (which pulls in `libtorch_cuda` in CUDA builds) with
//! `--no-as-needed`, because otherwise the linker drops the CUDA library that nothing
//! references by symbol and `Cuda::is_available()` reports false on a GPU machine.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "linux" {
        return;
    }
    if let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") {
        let lib = lib.to_string_lossy();
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        if std::path::Path::new(&*lib)
            .join("libtorch_cuda.so")
            .exists()
        {
            println!("cargo:rustc-link-arg=-ltorch_cuda");
        }
        println!("cargo:rustc-link-arg=-ltorch");
    }
}
