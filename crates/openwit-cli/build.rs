// The `openwit` binary built with the `train` feature for GPU machines needs libtorch_cuda kept in
// its link: nothing references it directly, so the default `--as-needed` linking drops it and
// CUDA never registers (libtorch then sees no device). The switch is the one openwit-clip's own
// build script uses for its examples: OPENWIT_CLIP_CUDA=1 at build time. It is explicit, not
// inferred from the libtorch folder, because the PyPI wheel CPU machines build against ships
// libtorch_cuda.so too, and a binary that needs it does not start where the CUDA libraries
// (cuBLAS, cuDNN, ...) are absent.
//
// The binary also finds libtorch without LD_LIBRARY_PATH: the folders it was linked against
// (`$LIBTORCH/lib` and the CUDA runtime the PyPI wheel needs beside it, `nvidia/cu13/lib`) are
// written into it as an RPATH. DT_RPATH (`--disable-new-dtags`), not DT_RUNPATH: libtorch_cpu
// loads libcudart/libcupti itself, and only DT_RPATH is searched for a library's own needs.
fn main() {
    println!("cargo:rerun-if-env-changed=OPENWIT_CLIP_CUDA");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if std::env::var_os("CARGO_FEATURE_TRAIN").is_none() {
        return;
    }
    if let Some(libtorch) = std::env::var_os("LIBTORCH") {
        let root = std::path::PathBuf::from(libtorch);
        let mut dirs = vec![root.join("lib")];
        if let Some(parent) = root.parent() {
            dirs.push(parent.join("nvidia/cu13/lib"));
        }
        let dirs: Vec<String> = dirs
            .iter()
            .filter(|d| d.is_dir())
            .filter_map(|d| d.to_str().map(str::to_string))
            .filter(|d| !d.contains([',', ':']))
            .collect();
        if !dirs.is_empty() {
            println!(
                "cargo:rustc-link-arg-bins=-Wl,--disable-new-dtags,-rpath,{}",
                dirs.join(":")
            );
        }
    }
    if std::env::var("OPENWIT_CLIP_CUDA").is_ok_and(|v| v == "1") {
        println!("cargo:rustc-link-arg-bins=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    } else if std::path::Path::new("/proc/driver/nvidia/version").exists() {
        println!(
            "cargo:warning=this machine has an NVIDIA driver but OPENWIT_CLIP_CUDA is not 1: the openwit binary will train on the CPU only (build with OPENWIT_CLIP_CUDA=1 to link libtorch_cuda)"
        );
    }
}
