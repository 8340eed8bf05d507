//! Benchmark driver for `scripts/bench-sources.sh`.
//!
//! - `bench_sources gen DIR PAGES`: writes DIR/bench.warc.gz and DIR/bench.wat.gz.
//! - `bench_sources extract FILE`: one thread; prints JSON with MB/s (compressed input) and pairs/s.
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
            cfg.demo_site = Some(openwit_sources::crawl::DemoSite {
                dir: site.clone(),
                pages,
            });
            cfg.min_delay_ms = 0;
            cfg.per_host = 16;
            cfg.concurrency = 16;
            cfg.max_depth = 3;
            cfg.max_pages = pages as u64 + 10;
            let stage = openwit_sources::crawl::CrawlStage::new(cfg, &dir).unwrap();
            let opts = openwit_core::RunOptions {
                jobs: 2,
                max_attempts: 1,
            };
            let mut ex =
                openwit_core::Executor::new(&work, opts, &openwit_core::NoProgress).unwrap();
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
            eprintln!("usage: bench_sources gen DIR PAGES | extract FILE | crawl DIR PAGES");
            std::process::exit(2);
        }
    }
}
