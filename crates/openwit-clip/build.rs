// With OPENWIT_CLIP_CUDA=1, this crate's examples (the GPU benchmark) keep libtorch_cuda linked:
// nothing references it directly, so `--as-needed` would drop it and CUDA would never register.
// Tests and CPU builds leave it out, so they run with only libtorch_cpu, libcudart and libcupti.
fn main() {
    println!("cargo:rerun-if-env-changed=OPENWIT_CLIP_CUDA");
    if std::env::var("OPENWIT_CLIP_CUDA").is_ok_and(|v| v == "1") {
        println!("cargo:rustc-link-arg-examples=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
