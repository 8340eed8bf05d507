//! Progress bars (indicatif), one per running stage.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use openwit_core::Reporter;

/// Draws a bar per stage: tasks done/total with ETA, items processed and items/s; for a stage
/// that reports steps (training), step/total with the step's figures and the ETA.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, (ProgressBar, Instant)>>,
    items: Mutex<HashMap<String, u64>>,
    /// Stages whose bar counts steps ([`Reporter::steps`]) instead of tasks.
    stepped: Mutex<HashSet<String>>,
    last: AtomicU64,
}

impl Bars {
    pub fn new() -> Self {
        Bars {
            multi: MultiProgress::new(),
            bars: Mutex::new(HashMap::new()),
            items: Mutex::new(HashMap::new()),
            stepped: Mutex::new(HashSet::new()),
            last: AtomicU64::new(0),
        }
    }

    fn refresh(&self, stage: &str) {
        if self.stepped.lock().unwrap().contains(stage) {
            return;
        }
        let items = self.items.lock().unwrap().get(stage).copied().unwrap_or(0);
        if let Some((bar, t0)) = self.bars.lock().unwrap().get(stage) {
            let secs = t0.elapsed().as_secs_f64().max(1e-3);
            bar.set_message(format!("{items} items, {:.0} items/s", items as f64 / secs));
        }
    }
}

impl Default for Bars {
    fn default() -> Self {
        Self::new()
    }
}

impl Reporter for Bars {
    fn stage_started(&self, stage: &str, total: u64, done: u64) {
        let bar = self.multi.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>10.bold} [{bar:30}] {pos}/{len} tasks, {msg} ({elapsed}, ETA {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(stage.to_string());
        bar.set_position(done);
        bar.enable_steady_tick(std::time::Duration::from_millis(250));
        self.bars
            .lock()
            .unwrap()
            .insert(stage.to_string(), (bar, Instant::now()));
        self.refresh(stage);
    }

    fn task_finished(&self, stage: &str, _task: &str, _items_out: u64) {
        if let Some((bar, _)) = self.bars.lock().unwrap().get(stage) {
            bar.inc(1);
        }
        self.refresh(stage);
    }

    fn items(&self, stage: &str, n: u64) {
        *self
            .items
            .lock()
            .unwrap()
            .entry(stage.to_string())
            .or_default() += n;
        // Refresh the message every 64 reports, not on every item.
        if self.last.fetch_add(1, Ordering::Relaxed).is_multiple_of(64) {
            self.refresh(stage);
        }
    }

    fn steps(&self, stage: &str, done: u64, total: u64, msg: &str) {
        let mut stepped = self.stepped.lock().unwrap();
        if let Some((bar, _)) = self.bars.lock().unwrap().get(stage) {
            if stepped.insert(stage.to_string()) {
                // From now on the bar counts this stage's steps (a training run), not its tasks.
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>10.bold} [{bar:30}] step {pos}/{len}, {msg} ({elapsed}, ETA {eta})",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_length(total);
                // A resumed run starts part-way: the ETA counts from here.
                bar.set_position(done.saturating_sub(1));
                bar.reset_eta();
            }
            bar.set_length(total);
            bar.set_position(done);
            bar.set_message(msg.to_string());
        }
    }

    fn stage_finished(&self, stage: &str, ok: bool) {
        self.refresh(stage);
        if let Some((bar, _)) = self.bars.lock().unwrap().remove(stage) {
            if ok {
                bar.finish();
            } else {
                bar.abandon();
            }
        }
    }
}
