//! Benchmark of `openwit index` and search on generated captions.
//!
//! `cargo run --release -p openwit-index --example bench_index -- [SAMPLES] [WORKDIR]`
//!
//! Writes SAMPLES (default 1,000,000) generated samples (English-like captions from a fixed
//! vocabulary with Zipf-like word frequencies, a small real JPEG each) as 10,000-sample shards
//! through a stand-in download stage, indexes them with the real index stage, then times 1,000
//! queries (words, two-word conjunctions, phrases, entry filters) and prints JSON with the
//! index time and query latency percentiles. The workdir is kept when given.

use std::path::{Path, PathBuf};
use std::time::Instant;

use openwit_core::{Stage, StageContext, TaskContext, TaskReport, TaskSpec};
use openwit_index::{IndexSet, SearchOptions};
use openwit_shard::{SampleMeta, ShardLayout, ShardStats, ShardWriter};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

const SHARD: u64 = 10_000;

const NOUNS: &[&str] = &[
    "dog",
    "cat",
    "car",
    "house",
    "tree",
    "river",
    "mountain",
    "beach",
    "city",
    "street",
    "bridge",
    "flower",
    "garden",
    "child",
    "woman",
    "man",
    "bird",
    "horse",
    "boat",
    "train",
    "plane",
    "table",
    "chair",
    "book",
    "lighthouse",
    "castle",
    "church",
    "market",
    "forest",
    "lake",
    "field",
    "road",
    "window",
    "door",
    "kitchen",
    "teapot",
    "cup",
    "bottle",
    "guitar",
    "piano",
    "painting",
    "statue",
    "map",
    "clock",
    "lamp",
    "bicycle",
    "truck",
    "bus",
    "station",
    "harbour",
    "island",
    "desert",
    "snow",
    "sunset",
    "cloud",
    "sky",
    "moon",
    "star",
    "portrait",
    "building",
    "tower",
    "wall",
    "fence",
    "farm",
    "cow",
    "sheep",
    "goat",
    "fish",
    "shell",
    "rock",
    "stone",
    "sand",
    "wave",
    "ship",
    "anchor",
    "flag",
    "crowd",
    "festival",
    "dance",
    "concert",
    "stadium",
    "player",
    "team",
    "ball",
    "game",
    "shoe",
    "dress",
    "hat",
    "coat",
    "bag",
    "ring",
    "necklace",
    "cake",
    "bread",
    "apple",
    "orange",
    "banana",
    "salad",
    "pizza",
    "coffee",
    "tea",
    "wine",
    "beer",
    "soup",
    "plate",
    "bowl",
    "retriever",
    "terrier",
    "spaniel",
    "poodle",
    "kitten",
    "puppy",
    "sunflower",
    "rose",
    "tulip",
    "orchid",
    "oak",
    "pine",
    "palm",
    "maple",
    "valley",
    "canyon",
    "waterfall",
    "glacier",
    "volcano",
    "cave",
    "temple",
    "museum",
    "library",
    "school",
    "hospital",
    "airport",
    "factory",
    "engine",
    "wheel",
    "robot",
    "computer",
];
const ADJS: &[&str] = &[
    "red",
    "blue",
    "green",
    "yellow",
    "white",
    "black",
    "old",
    "new",
    "small",
    "large",
    "beautiful",
    "ancient",
    "modern",
    "vintage",
    "golden",
    "wooden",
    "stone",
    "quiet",
    "busy",
    "sunny",
    "snowy",
    "rainy",
    "bright",
    "dark",
    "colorful",
    "tiny",
    "huge",
    "happy",
    "young",
    "famous",
    "rural",
    "urban",
    "wild",
    "empty",
    "crowded",
];
const PREPS: &[&str] = &[
    "on", "in", "near", "under", "behind", "beside", "at", "with", "over", "by",
];
const FORMS: &[&str] = &[
    "A photo of",
    "An image of",
    "Picture of",
    "A",
    "The",
    "Close-up of",
    "View of",
    "Painting of",
];

fn zipf(rng: &mut ChaCha8Rng, n: usize) -> usize {
    // Inverse-CDF of ~1/(rank) over n items.
    let u: f64 = rng.random();
    ((n as f64 + 1.0).powf(u) - 1.0).floor().min(n as f64 - 1.0) as usize
}

fn caption(rng: &mut ChaCha8Rng) -> (String, Vec<i32>) {
    let n1 = zipf(rng, NOUNS.len());
    let n2 = zipf(rng, NOUNS.len());
    let plural = if rng.random_bool(0.3) { "s" } else { "" };
    let c = format!(
        "{} {} {}{} {} the {} {}",
        FORMS[rng.random_range(0..FORMS.len())],
        ADJS[zipf(rng, ADJS.len())],
        NOUNS[n1],
        plural,
        PREPS[rng.random_range(0..PREPS.len())],
        ADJS[zipf(rng, ADJS.len())],
        NOUNS[n2]
    );
    (c, vec![n1 as i32, n2 as i32])
}

fn tiny_jpeg(seed: u8) -> Vec<u8> {
    let (w, h) = (16u16, 16u16);
    let px: Vec<u8> = (0..w as usize * h as usize * 3)
        .map(|i| (i as u8).wrapping_mul(seed))
        .collect();
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 80)
        .encode(&px, w, h, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
}

struct GenDownload {
    samples: u64,
}

impl Stage for GenDownload {
    fn name(&self) -> &str {
        "download"
    }
    fn config(&self) -> Value {
        json!({ "samples": self.samples })
    }
    fn plan(&self, _: &StageContext<'_>) -> openwit_core::Result<Vec<TaskSpec>> {
        Ok((0..self.samples.div_ceil(SHARD))
            .map(|i| TaskSpec::new(format!("{i:05}"), json!(i)))
            .collect())
    }
    fn run_task(&self, ctx: &TaskContext<'_>, t: &TaskSpec) -> openwit_core::Result<TaskReport> {
        let shard = t.payload.as_u64().unwrap();
        let layout = ShardLayout::new(SHARD);
        let name = layout.shard_name(shard);
        let mut w = ShardWriter::create(&ctx.output_path(&format!("{name}.tar"))?, vec![])?;
        let mut rng = ChaCha8Rng::seed_from_u64(shard);
        let imgs: Vec<Vec<u8>> = (1..=8).map(tiny_jpeg).collect();
        let n = SHARD.min(self.samples - shard * SHARD);
        for i in 0..n {
            let (c, ids) = caption(&mut rng);
            let key = layout.key(shard, i);
            let mut m = SampleMeta::new(
                format!("http://img{}.example.org/{key}.jpg", i % 97),
                Some(c),
                key,
            );
            m.entry_ids = Some(ids);
            m.set_success(16, 16, 640, 480, String::new());
            w.add_success(m, "jpg", &imgs[(i % 8) as usize])?;
        }
        w.finish(
            &ctx.output_path(&format!("{name}.parquet"))?,
            &ctx.output_path(&format!("{name}_stats.json"))?,
            ShardStats::default(),
        )?;
        Ok(TaskReport {
            items_in: n,
            items_out: n,
            ..Default::default()
        })
    }
}

fn pct(v: &[f64], p: f64) -> f64 {
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let samples: u64 = args
        .get(1)
        .map(|s| s.replace('_', "").parse().unwrap())
        .unwrap_or(1_000_000);
    let keep = args.get(2).map(PathBuf::from);
    let tmp = tempfile::tempdir().unwrap();
    let workdir: &Path = keep.as_deref().unwrap_or(tmp.path());
    std::fs::create_dir_all(workdir.join("queries")).unwrap();
    let entries: Vec<&str> = NOUNS.to_vec();
    std::fs::write(
        workdir.join("queries/metadata.json"),
        serde_json::to_vec(&entries).unwrap(),
    )
    .unwrap();
    let jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let mut ex = openwit_testkit::executor(workdir, jobs);
    let t0 = Instant::now();
    ex.run_stage(&GenDownload { samples }).unwrap();
    let gen_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let stage = openwit_index::IndexStage::new(Default::default(), Path::new("."));
    ex.run_stage(&stage).unwrap();
    let index_s = t1.elapsed().as_secs_f64();
    drop(ex);
    let index_bytes: u64 = walk_size(&workdir.join("index"));

    let t2 = Instant::now();
    let set = IndexSet::open(workdir).unwrap();
    let open_ms = t2.elapsed().as_secs_f64() * 1e3;
    assert_eq!(set.num_docs(), samples);
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut queries = Vec::new();
    for i in 0..1000 {
        let n = NOUNS[rng.random_range(0..NOUNS.len())];
        let a = ADJS[rng.random_range(0..ADJS.len())];
        queries.push(match i % 4 {
            0 => (n.to_string(), None),
            1 => (format!("{a} {n}"), None),
            2 => (format!("\"{a} {n}\""), None),
            _ => (
                a.to_string(),
                Some(NOUNS[rng.random_range(0..NOUNS.len())].to_string()),
            ),
        });
    }
    let mut lat = Vec::new();
    let mut hits = 0u64;
    for (q, entry) in &queries {
        let t = Instant::now();
        let r = set
            .search(
                q,
                &SearchOptions {
                    limit: 20,
                    offset: 0,
                    entry: entry.clone(),
                },
            )
            .unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        hits += r.total;
    }
    lat.sort_by(f64::total_cmp);

    // The web UI: a result page (60 thumbnails' links) and the images it shows, over HTTP.
    let app = openwit_index::router(workdir).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut page_ms = Vec::new();
    let mut image_ms = Vec::new();
    for (q, _) in queries.iter().take(200) {
        let t = Instant::now();
        let page = http_get(addr, &format!("/?q={}", url_enc(q)));
        page_ms.push(t.elapsed().as_secs_f64() * 1e3);
        if let Some(rest) = page.split("src=\"/image/").nth(1) {
            let link: String = rest.chars().take_while(|&c| c != '"').collect();
            let t = Instant::now();
            let img = http_get(addr, &format!("/image/{link}"));
            image_ms.push(t.elapsed().as_secs_f64() * 1e3);
            assert!(!img.is_empty());
        }
    }
    page_ms.sort_by(f64::total_cmp);
    image_ms.sort_by(f64::total_cmp);
    let r2 = |v: f64| (v * 100.0).round() / 100.0;
    let out = json!({
        "ui_search_page_ms": { "p50": r2(pct(&page_ms, 0.5)), "p99": r2(pct(&page_ms, 0.99)) },
        "ui_image_ms": { "p50": r2(pct(&image_ms, 0.5)), "p99": r2(pct(&image_ms, 0.99)) },
        "samples": samples,
        "shards": samples.div_ceil(SHARD),
        "jobs": jobs,
        "generate_s": (gen_s * 10.0).round() / 10.0,
        "index_s": (index_s * 10.0).round() / 10.0,
        "index_docs_per_s": (samples as f64 / index_s).round(),
        "index_mib": index_bytes / (1 << 20),
        "open_ms": (open_ms * 10.0).round() / 10.0,
        "queries": lat.len(),
        "mean_hits": hits / lat.len() as u64,
        "latency_ms": {
            "p50": (pct(&lat, 0.5) * 100.0).round() / 100.0,
            "p90": (pct(&lat, 0.9) * 100.0).round() / 100.0,
            "p99": (pct(&lat, 0.99) * 100.0).round() / 100.0,
            "max": (lat[lat.len() - 1] * 100.0).round() / 100.0,
        }
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}

fn walk_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        walk_size(&p)
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn url_enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// GET over plain HTTP/1.1 (Connection: close); returns the body as (lossy) text.
fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    assert!(
        buf.starts_with(b"HTTP/1.1 200"),
        "{path}: {}",
        String::from_utf8_lossy(&buf[..buf.len().min(200)])
    );
    String::from_utf8_lossy(&buf).into_owned()
}
