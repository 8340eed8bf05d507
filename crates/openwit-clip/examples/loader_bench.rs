//! CPU cost of the data pipeline's per-image work (decode + random resized crop + resize to the
//! model's resolution), the part that bounds a GPU run's samples/s when the loader cannot keep up.
//! One thread; images per CPU second of this process (user + sys from /proc), so a shared machine
//! does not distort it. Used for the loader figures in docs/BENCHMARKS.md.
//!
//!   cargo run --release -p openwit-clip --example loader_bench -- [SOURCE_SIZE=256] [OUT_SIZE=224] [N=2000]
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime and stime are 14 and 15.
    let rest = stat.rsplit_once(") ").map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let a: Vec<u32> = std::env::args()
        .skip(1)
        .map(|v| v.parse().expect("numbers"))
        .collect();
    let (src, out, n) = (
        a.first().copied().unwrap_or(256),
        a.get(1).copied().unwrap_or(224),
        a.get(2).copied().unwrap_or(2000),
    );
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let jpegs: Vec<Vec<u8>> = (0..64)
        .map(|_| {
            let (img, _, _) = openwit_clip::synth::sample(&mut rng, src);
            let mut jpg = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpg, 95)
                .encode_image(&img)
                .unwrap();
            jpg
        })
        .collect();
    let mut checksum = 0u64;
    let t0 = cpu_seconds();
    for i in 0..n as usize {
        let img = image::load_from_memory(&jpegs[i % jpegs.len()]).unwrap();
        checksum += img.width() as u64;
    }
    let decode = cpu_seconds() - t0;
    let t0 = cpu_seconds();
    for i in 0..n as usize {
        let img = openwit_clip::data::transform(&jpegs[i % jpegs.len()], out, Some(&mut rng))
            .expect("decodes");
        checksum += img.as_raw()[i % 100] as u64;
    }
    let full = cpu_seconds() - t0;
    println!(
        "{}",
        serde_json::json!({"source_size": src, "out_size": out, "images": n,
            "decode_cpu_s": decode, "transform_cpu_s": full,
            "decode_per_cpu_s": n as f64 / decode, "transform_per_cpu_s": n as f64 / full,
            "checksum": checksum})
    );
}
