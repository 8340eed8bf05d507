//! Benchmark driver for `scripts/bench-sources.sh`.
//!
//! - `bench_sources gen DIR PAGES`: writes DIR/bench.warc.gz and DIR/bench.wat.gz.
//! - `bench_sources extract FILE`: one thread; prints JSON with MB/s (compressed input) and pairs/s.
//! - `bench_sources split FILE`: CPU seconds of gunzip alone, + WARC parsing, + HTML parsing,
//!   the full extraction, and with parquet writing (where the time of `extract` goes).
//! - `bench_sources parse-only FILE`: the ceiling of a `scraper`-based extractor: CPU seconds of
//!   the charset decoding alone, then of decoding + `scraper::Html::parse_document` (tree dropped
//!   too), over the HTML pages of FILE read into memory first (gunzip and WARC parsing not
//!   counted): the pages `extract` would parse, with their Content-Type.
//! - `bench_sources crawl DIR PAGES`: generates a site of PAGES pages, serves it on 127.0.0.1 and
//!   crawls it with politeness off; prints pages/s and CPU ms per page.

use std::time::Instant;

fn cpu_secs() -> f64 {
    // user + system time of this process, from /proc/self/stat (Linux)
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = 100.0; // USER_HZ
    let ut: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    let st: f64 = f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    (ut + st) / tick
}

/// The HTML response bodies of a WARC file (2xx, HTML, with an `<img` tag: what
/// `warc_stage::process_file` hands to the extractor) and their Content-Type, in memory.
fn html_pages(path: &str) -> Vec<(Option<String>, Vec<u8>)> {
    let f = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut pages = Vec::new();
    for ev in openwit_sources::warc::WarcReader::new(f, true) {
        let openwit_sources::warc::Event::Record(r) = ev else {
            continue;
        };
        if r.warc_type() != "response" {
            continue;
        }
        let Some(p) = memchr::memmem::find(&r.body, b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&r.body[..p]);
        if !head
            .split_whitespace()
            .nth(1)
            .is_some_and(|s| s.starts_with('2'))
        {
            continue;
        }
        let ct = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        });
        let body = &r.body[p + 4..];
        if openwit_sources::html::is_html(ct.as_deref(), body)
            && openwit_sources::extract::has_img_tag(body)
        {
            pages.push((ct, body.to_vec()));
        }
    }
    pages
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("gen") => {
            let dir = std::path::Path::new(&args[2]);
            let pages: usize = args[3].parse().unwrap();
            std::fs::create_dir_all(dir).unwrap();
            let mut w =
                std::io::BufWriter::new(std::fs::File::create(dir.join("bench.warc.gz")).unwrap());
            openwit_sources::fixtures::write_warc(&mut w, 1, pages, 12).unwrap();
            let mut w =
                std::io::BufWriter::new(std::fs::File::create(dir.join("bench.wat.gz")).unwrap());
            openwit_sources::fixtures::write_wat(&mut w, 2, pages, 12).unwrap();
        }
        Some("extract") => {
            let path = &args[2];
            let size = std::fs::metadata(path).unwrap().len() as f64;
            let t = Instant::now();
            let c0 = cpu_secs();
            let mut pairs = 0u64;
            let f = std::fs::File::open(path).unwrap();
            let st = openwit_sources::warc_stage::process_file(
                Box::new(f),
                path,
                &mut |_| pairs += 1,
                &|_| false,
            )
            .unwrap();
            let secs = t.elapsed().as_secs_f64();
            let cpu = cpu_secs() - c0;
            println!(
                "{{\"impl\":\"openwit\",\"file\":\"{path}\",\"mb\":{:.1},\"records\":{},\"pages\":{},\"pairs\":{pairs},\"secs\":{secs:.3},\"cpu_secs\":{cpu:.3},\"mb_per_s\":{:.2},\"pairs_per_s\":{:.0},\"mb_per_cpu_s\":{:.2},\"pairs_per_cpu_s\":{:.0}}}",
                size / 1e6,
                st.records,
                st.pages,
                size / 1e6 / secs,
                pairs as f64 / secs,
                size / 1e6 / cpu.max(1e-9),
                pairs as f64 / cpu.max(1e-9)
            );
        }
        Some("split") => {
            // Where the CPU time of `extract FILE` goes: each pass adds one step to the last.
            let path = &args[2];
            let size = std::fs::metadata(path).unwrap().len() as f64;
            let open = || std::io::BufReader::new(std::fs::File::open(path).unwrap());
            let report = |step: &str, f: &mut dyn FnMut() -> u64| {
                let c0 = cpu_secs();
                let n = f();
                let cpu = cpu_secs() - c0;
                println!(
                    "{{\"step\":\"{step}\",\"file\":\"{path}\",\"n\":{n},\"cpu_secs\":{cpu:.3},\"mb_per_cpu_s\":{:.1}}}",
                    size / 1e6 / cpu.max(1e-9)
                );
            };
            report("gunzip (flate2 MultiGzDecoder)", &mut || {
                let mut d = flate2::read::MultiGzDecoder::new(open());
                std::io::copy(&mut d, &mut std::io::sink()).unwrap()
            });
            report("+ WARC records (WarcReader)", &mut || {
                openwit_sources::warc::WarcReader::new(open(), true).count() as u64
            });
            report("+ decode and parse the HTML (scraper)", &mut || {
                let mut n = 0u64;
                for ev in openwit_sources::warc::WarcReader::new(open(), true) {
                    if let openwit_sources::warc::Event::Record(r) = ev
                        && r.warc_type() == "response"
                        && let Some(p) = memchr::memmem::find(&r.body, b"\r\n\r\n")
                    {
                        let body = &r.body[p + 4..];
                        if openwit_sources::extract::has_img_tag(body) {
                            let text =
                                openwit_sources::html::decode_html_cow(body, Some("text/html"));
                            n += scraper::Html::parse_document(&text).tree.nodes().count() as u64;
                        }
                    }
                }
                n
            });
            report("full extraction (process_file)", &mut || {
                let mut pairs = 0u64;
                openwit_sources::warc_stage::process_file(
                    Box::new(std::fs::File::open(path).unwrap()),
                    path,
                    &mut |_| pairs += 1,
                    &|_| false,
                )
                .unwrap();
                pairs
            });
            report("+ parquet writing (CandidateWriter)", &mut || {
                let mut w = openwit_sources::CandidateWriter::new(std::io::sink()).unwrap();
                openwit_sources::warc_stage::process_file(
                    Box::new(std::fs::File::open(path).unwrap()),
                    path,
                    &mut |c| w.push(c).unwrap(),
                    &|_| false,
                )
                .unwrap();
                w.finish().unwrap().0
            });
        }
        Some("parse-only") => {
            let path = &args[2];
            let size = std::fs::metadata(path).unwrap().len() as f64;
            let pages = html_pages(path);
            let bytes: usize = pages.iter().map(|(_, b)| b.len()).sum();
            let report = |step: &str, f: &mut dyn FnMut() -> u64| {
                let c0 = cpu_secs();
                let n = f();
                let cpu = cpu_secs() - c0;
                println!(
                    "{{\"impl\":\"openwit\",\"step\":\"{step}\",\"file\":\"{path}\",\"pages\":{},\"html_mb\":{:.1},\"n\":{n},\"cpu_secs\":{cpu:.3},\"file_mb_per_cpu_s\":{:.1}}}",
                    pages.len(),
                    bytes as f64 / 1e6,
                    size / 1e6 / cpu.max(1e-9)
                );
            };
            report("decode (html::decode_html_cow)", &mut || {
                pages
                    .iter()
                    .map(|(ct, b)| {
                        openwit_sources::html::decode_html_cow(b, ct.as_deref()).len() as u64
                    })
                    .sum()
            });
            report(
                "decode + parse (scraper::Html::parse_document)",
                &mut || {
                    pages
                        .iter()
                        .map(|(ct, b)| {
                            let text = openwit_sources::html::decode_html_cow(b, ct.as_deref());
                            // the tree is built and dropped, as the extractor does
                            std::hint::black_box(scraper::Html::parse_document(&text));
                            1
                        })
                        .sum()
                },
            );
        }
        Some("crawl") => {
            let dir = std::path::PathBuf::from(&args[2]);
            let pages: usize = args[3].parse().unwrap();
            let site = dir.join("site");
            if !site.join(".openwit-demo-site").exists() {
                openwit_sources::demo_site::generate(&site, pages).unwrap();
            }
            let work = dir.join("work");
            let _ = std::fs::remove_dir_all(&work);
            let mut cfg = openwit_sources::crawl::CrawlConfig::with_seeds(vec![]);
            cfg.demo_site = Some(openwit_sources::crawl::DemoSite::generated(
                site.clone(),
                pages,
            ));
            cfg.min_delay_ms = 0;
            cfg.per_host = 16;
            cfg.concurrency = 16;
            cfg.max_depth = 3;
            cfg.max_pages = pages as u64 + 10;
            let stage = openwit_sources::crawl::CrawlStage::new(cfg, &dir).unwrap();
            let mut ex = openwit_testkit::executor(&work, 2);
            let t = Instant::now();
            let c0 = cpu_secs();
            ex.run_stage(&stage).unwrap();
            let secs = t.elapsed().as_secs_f64();
            let cpu = cpu_secs() - c0;
            let rec = ex
                .state()
                .tasks("crawl")
                .unwrap()
                .into_iter()
                .find(|t| t.task == "crawl")
                .unwrap();
            println!(
                "{{\"impl\":\"openwit-crawl\",\"pages\":{},\"pairs\":{},\"secs\":{secs:.2},\"cpu_secs\":{cpu:.2},\"pages_per_s\":{:.0},\"cpu_ms_per_page\":{:.2}}}",
                rec.items_in,
                rec.items_out,
                rec.items_in as f64 / secs,
                cpu * 1000.0 / rec.items_in.max(1) as f64
            );
        }
        _ => {
            eprintln!(
                "usage: bench_sources gen DIR PAGES | extract FILE | split FILE | parse-only FILE | crawl DIR PAGES"
            );
            std::process::exit(2);
        }
    }
}
