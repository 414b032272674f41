//! Embed libtorch's directory as an rpath so binaries and tests run without
//! LD_LIBRARY_PATH (see docs/toolchain.md).
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    // torch-sys declares links = "tch", so its metadata arrives as DEP_TCH_*.
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    // The linker's --as-needed drops libtorch_cuda (nothing references it directly), so
    // CUDA would never be found: keep it when the `cuda` feature asks for it.
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
