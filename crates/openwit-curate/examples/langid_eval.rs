//! Measures the language identifiers on the labelled caption set (`langset`): precision and
//! recall for English, accuracy over all languages, captions/s on one core.
//! `cargo run --release -p openwit-curate --example langid_eval`

use std::time::Instant;

use openwit_curate::lang::{Engine, detect};

fn main() {
    let set = openwit_curate::langset::labelled();
    let langs: std::collections::BTreeSet<&str> = set.iter().map(|(l, _)| *l).collect();
    println!(
        "{} captions in {} languages ({} English)",
        set.len(),
        langs.len(),
        set.iter().filter(|(l, _)| *l == "en").count()
    );
    println!("engine\tmin_conf\tEN precision\tEN recall\taccuracy\tcaptions/s (1 core)");
    for engine in [Engine::Whichlang, Engine::Whatlang] {
        for min_conf in [0.0f32, 0.5, 0.9] {
            let (mut tp, mut fp, mut fn_, mut ok) = (0, 0, 0, 0);
            for (truth, text) in &set {
                let (l, c) = detect(engine, text);
                let en = l == "en" && c >= min_conf;
                match (*truth == "en", en) {
                    (true, true) => tp += 1,
                    (false, true) => fp += 1,
                    (true, false) => fn_ += 1,
                    _ => {}
                }
                if l == *truth {
                    ok += 1;
                }
            }
            // Speed: the whole set repeated for about a second.
            let t0 = Instant::now();
            let mut n = 0u64;
            let mut sink = 0usize;
            while t0.elapsed().as_secs_f64() < 1.0 {
                for (_, text) in &set {
                    sink += detect(engine, text).0.len();
                    n += 1;
                }
            }
            let rate = n as f64 / t0.elapsed().as_secs_f64();
            std::hint::black_box(sink);
            println!(
                "{}\t{min_conf}\t{:.3}\t{:.3}\t{:.3}\t{:.0}",
                engine.name(),
                tp as f64 / (tp + fp).max(1) as f64,
                tp as f64 / (tp + fn_).max(1) as f64,
                ok as f64 / set.len() as f64,
                rate
            );
        }
    }
    if std::env::args().any(|a| a == "--errors") {
        for engine in [Engine::Whichlang, Engine::Whatlang] {
            for (truth, text) in &set {
                let (l, c) = detect(engine, text);
                if (l == "en") != (*truth == "en") {
                    println!("{}\t{truth}\t{l}\t{c:.2}\t{text}", engine.name());
                }
            }
        }
    }
}
