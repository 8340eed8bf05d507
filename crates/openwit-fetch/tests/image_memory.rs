//! Bounded image memory: the download stage over large 16-bit PNGs (9,400 x 9,400 RGB, just under
//! the default pixel limit; decoded whole, 1,011 MiB each by their headers) stays under its
//! `image_memory_budget_mb` plus a constant, both when they are resized (decoded row by row and
//! reduced on the fly) and when they are kept at full size (decoded whole, one at a time within
//! the default budget). The stage runs in a child process (this test binary
//! run again with `OPENWIT_IMAGE_MEMORY_CHILD` set, so its peak RSS is the stage's alone, not the
//! generator's or the server's) and reports its `VmHWM` from `/proc/self/status`.
//!
//! `harness = false` (Cargo.toml): `main` is the parent or the child. Knobs for measuring
//! (`docs/BENCHMARKS.md`): `OPENWIT_RSS_IMAGES` (default 3), `OPENWIT_RSS_SIDE` (9400),
//! `OPENWIT_RSS_BUDGET_MB` (1024, the default budget).

use std::io::Write;
use std::path::Path;
use std::process::Command;

use openwit_fetch::imaging::{ImageOptions, decode_cost};
use openwit_fetch::{Config, DownloadStage};
use openwit_shard::{Status, read_parquet};
use openwit_testkit::{Response, TestServer};

/// What the process holds besides the images being decoded: the binary, the runtime, the HTTP
/// client, the compressed bodies in flight, the shard writers.
const CONSTANT_MIB: u64 = 256;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
        })
        .unwrap_or(default)
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

/// The IDAT payload of a `side` x `side` 16-bit RGB gradient, rows Sub-filtered (small once
/// deflated, the full size once decoded).
fn idat(side: u32) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut raw = vec![0u8; side as usize * 6];
    let mut row = vec![0u8; 1 + side as usize * 6];
    for y in 0..side {
        for x in 0..side {
            let px = [
                (x.wrapping_mul(7)) as u16,
                (y.wrapping_mul(5)) as u16,
                x.wrapping_mul(3).wrapping_add(y) as u16,
            ];
            for (c, v) in px.iter().enumerate() {
                let i = x as usize * 6 + c * 2;
                raw[i..i + 2].copy_from_slice(&v.to_be_bytes());
            }
        }
        row[0] = 1; // Sub
        for i in 0..raw.len() {
            row[1 + i] = raw[i].wrapping_sub(if i >= 6 { raw[i - 6] } else { 0 });
        }
        z.write_all(&row).unwrap();
    }
    z.finish().unwrap()
}

/// A PNG around `idat`, made distinct by a text chunk.
fn png(side: u32, idat: &[u8], n: usize) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[16, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"tEXt", format!("Comment\0copy {n}").as_bytes());
    for part in idat.chunks(1 << 20) {
        chunk(&mut out, b"IDAT", part);
    }
    chunk(&mut out, b"IEND", &[]);
    out
}

/// `resize_mode`: `border` (the default: 256 x 256, the PNGs are decoded row by row and
/// reduced on the fly) or `no` (kept at full size: decoded whole, the budget decides).
fn config(budget_mb: u64, resize_mode: &str) -> Config {
    toml::from_str(&format!(
        "input = \"urls.csv\"\nshard_size = 4\nretries = 0\nrespect_robots = false\n\
         dedup_sha256 = false\ntimeout = 300.0\nread_timeout = 60.0\n\
         image_memory_budget_mb = {budget_mb}\nresize_mode = \"{resize_mode}\"\n"
    ))
    .unwrap()
}

/// The child: runs the stage in `dir`, prints its peak RSS.
fn child(dir: &Path, budget_mb: u64, resize_mode: &str) {
    let stage = DownloadStage::new(config(budget_mb, resize_mode), dir, true).unwrap();
    openwit_testkit::run_stage(&dir.join("work"), 2, &stage).unwrap();
    println!("VmHWM_KIB={}", vm_hwm_kib());
}

/// This process's peak RSS (`VmHWM`), KiB.
fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("VmHWM in /proc/self/status")
}

fn parent(resize_mode: &str) {
    let images = env_u64("OPENWIT_RSS_IMAGES", 3) as usize;
    let side = env_u64("OPENWIT_RSS_SIDE", 9400) as u32;
    let budget_mb = env_u64("OPENWIT_RSS_BUDGET_MB", 1024);

    let idat = idat(side);
    let bodies: Vec<Vec<u8>> = (0..images).map(|n| png(side, &idat, n)).collect();
    drop(idat);
    let opts = ImageOptions::from_config(&config(budget_mb, resize_mode));
    let cost = decode_cost(&bodies[0], &opts);
    let whole = side as u64 * side as u64 * (6 + 6);
    if resize_mode == "no" {
        assert_eq!(
            cost, whole,
            "header cost: width x height x 3 channels x 2 bytes + two RGB8 copies"
        );
    } else {
        assert!(cost * 100 < whole, "row by row: {cost} bytes");
    }
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let mut csv = String::from("url,caption\n");
    for (n, b) in bodies.iter().enumerate() {
        server.route(
            &format!("/big{n}.png"),
            Response::bytes("image/png", b.clone()),
        );
        csv.push_str(&format!(
            "{},big {n}\n",
            server.url(&format!("/big{n}.png"))
        ));
    }
    let body_mib = bodies.iter().map(|b| b.len()).sum::<usize>() as f64 / (1 << 20) as f64;
    drop(bodies);
    std::fs::write(tmp.path().join("urls.csv"), csv).unwrap();

    let out = Command::new(std::env::current_exe().unwrap())
        .env("OPENWIT_IMAGE_MEMORY_CHILD", tmp.path())
        .env("OPENWIT_RSS_BUDGET_MB", budget_mb.to_string())
        .env("OPENWIT_RSS_MODE", resize_mode)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hwm_kib: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM_KIB="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM from the child: {stdout}"));

    // Every image became a sample of the right original size.
    let mut ok = 0;
    for tar in openwit_shard::list_shards(&tmp.path().join("work/download")).unwrap() {
        for r in read_parquet(&tar.with_extension("parquet")).unwrap() {
            assert_eq!(r.status, Status::Success, "{:?}", r.error_message);
            assert_eq!(
                (r.original_width, r.original_height),
                (Some(side as i64), Some(side as i64))
            );
            ok += 1;
        }
    }
    assert_eq!(ok, images);

    let hwm_mib = hwm_kib / 1024;
    let bound = budget_mb.max(cost.div_ceil(1 << 20)) + CONSTANT_MIB;
    println!(
        "image_memory: resize_mode {resize_mode}, {images} PNGs of {side}x{side} 16-bit RGB ({body_mib:.1} MiB of bodies), \
         {} MiB of decoding each by their headers, budget {budget_mb} MiB, {} cores: \
         peak RSS of the download stage {hwm_mib} MiB (bound {bound} MiB; this parent: {} MiB)",
        cost >> 20,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        vm_hwm_kib() / 1024,
    );
    assert!(
        hwm_mib <= bound,
        "peak RSS {hwm_mib} MiB is over the budget ({budget_mb} MiB, or one image's {} MiB) + \
         {CONSTANT_MIB} MiB",
        cost >> 20
    );
}

fn main() {
    // `cargo test` passes harness flags (`--quiet`, filters): a filter that does not name this
    // test skips it, as the harness would.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if args.iter().any(|a| a == "--list") {
        println!("image_memory: test");
        return;
    }
    if let Ok(dir) = std::env::var("OPENWIT_IMAGE_MEMORY_CHILD") {
        let mode = std::env::var("OPENWIT_RSS_MODE").unwrap_or_else(|_| "border".into());
        child(
            Path::new(&dir),
            env_u64("OPENWIT_RSS_BUDGET_MB", 1024),
            &mode,
        );
        return;
    }
    if !filters.is_empty() && !filters.iter().any(|f| "image_memory".contains(f.as_str())) {
        println!("0 passed, 0 failed");
        return;
    }
    // Decoded row by row and reduced (the default resize), then kept whole (no resize).
    parent("border");
    parent("no");
    println!("1 passed, 0 failed");
}
