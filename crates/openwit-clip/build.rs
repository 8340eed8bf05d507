// With OPENWIT_CLIP_CUDA=1, this crate's examples (the GPU benchmark) keep libtorch_cuda linked:
// nothing references it directly, so `--as-needed` would drop it and CUDA would never register.
// Tests and CPU builds leave it out, so they run with only libtorch_cpu, libcudart and libcupti.
//
// It also compiles `csrc/dist.cpp`, the C++ shim that reaches PyTorch's c10d (TCPStore, Gloo,
// NCCL) for `openwit_clip::dist`: one translation unit against the libtorch that torch-sys builds
// with (`$LIBTORCH`), C++17 with the same `_GLIBCXX_USE_CXX11_ABI` as torch-sys, `-O1`, no debug
// information. ProcessGroupNCCL is compiled in only with OPENWIT_CLIP_CUDA=1 and when its headers
// (NCCL's and the CUDA runtime's) are found; CPU builds need neither.
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=OPENWIT_CLIP_CUDA");
    let cuda = std::env::var("OPENWIT_CLIP_CUDA").is_ok_and(|v| v == "1");
    if cuda {
        println!("cargo:rustc-link-arg-examples=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    shim(cuda);
}

/// Include folders of the CUDA runtime and NCCL that a CUDA build of ProcessGroupNCCL needs, or
/// None when one is missing: `$CUDA_HOME/include`, `$OPENWIT_NCCL_INCLUDE` (a path list, as
/// `scripts/setup-libtorch.sh --cuda` prints it), and the `nvidia/*` wheels beside a PyPI libtorch
/// (`$LIBTORCH/../nvidia/*/include`).
fn nccl_includes(libtorch: &Path) -> Option<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(p) = std::env::var_os(var) {
            dirs.push(PathBuf::from(p).join("include"));
        }
    }
    if let Some(p) = std::env::var_os("OPENWIT_NCCL_INCLUDE") {
        dirs.extend(std::env::split_paths(&p));
    }
    for root in [libtorch.join("../nvidia"), libtorch.join("../../nvidia")] {
        if let Ok(rd) = std::fs::read_dir(&root) {
            let mut found: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path().join("include")))
                .filter(|p| p.is_dir())
                .collect();
            found.sort();
            dirs.extend(found);
        }
    }
    dirs.push(PathBuf::from("/usr/local/cuda/include"));
    let has = |f: &str| dirs.iter().any(|d| d.join(f).is_file());
    (has("nccl.h") && has("cuda_runtime_api.h")).then_some(dirs)
}

fn shim(cuda: bool) {
    println!("cargo:rerun-if-changed=csrc");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    println!("cargo:rerun-if-env-changed=OPENWIT_NCCL_INCLUDE");
    let Some(libtorch) = std::env::var_os("LIBTORCH").map(PathBuf::from) else {
        panic!(
            "openwit-clip: LIBTORCH is not set; run `eval \"$(scripts/setup-libtorch.sh)\"` first (crates/openwit-clip/README.md)"
        );
    };
    // torch-sys's default when LIBTORCH is set.
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    let mut b = cc::Build::new();
    b.cpp(true)
        .pic(true)
        .warnings(false)
        .debug(false)
        .opt_level(1)
        .std("c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", abi.as_str())
        .define("GLOG_USE_GLOG_EXPORT", None)
        .include("csrc/gloo_decl")
        .include(libtorch.join("include"))
        .include(libtorch.join("include/torch/csrc/api/include"))
        .file("csrc/dist.cpp");
    let has_cuda_lib = libtorch.join("lib/libtorch_cuda.so").exists();
    if cuda && has_cuda_lib {
        match nccl_includes(&libtorch) {
            Some(dirs) => {
                b.define("OPENWIT_NCCL", None).define("USE_C10D_NCCL", None);
                b.includes(dirs);
                // ProcessGroupNCCL lives in libtorch_cuda (CUDA's streams and events in
                // libc10_cuda): every binary that links the shim needs them, not only the examples.
                println!("cargo:rustc-link-lib=dylib=torch_cuda");
                println!("cargo:rustc-link-lib=dylib=c10_cuda");
            }
            None => println!(
                "cargo:warning=OPENWIT_CLIP_CUDA=1 but nccl.h or cuda_runtime_api.h was not found (CUDA_HOME, OPENWIT_NCCL_INCLUDE, $LIBTORCH/../nvidia/*/include): distributed training on GPUs (NCCL) is left out of this build; `eval \"$(scripts/setup-libtorch.sh --cuda)\"` installs the headers"
            ),
        }
    }
    b.compile("openwit_dist");
}
