//! MetaCLIP's balance, reproducible everywhere.
//!
//! `count[e]` = matched candidates per entry over the whole (filtered, deduplicated) pool;
//! `p[e] = min(1, factor * t / count[e])`; a candidate is kept when any of its matched entries
//! passes its draw. The draw for (candidate, entry) is `xxh3_64(key ++ entry, seed)` mapped to
//! [0, 1), where `key = xxh3_64(url ++ 0x00 ++ caption)`: it depends on nothing but the seed and
//! the pair, so reruns, other task splits and other machines keep exactly the same candidates.
//! A smaller `p` keeps a subset of what a larger `p` kept (the same draw is compared), so
//! balancing again after download (`balance` stage) only removes, never adds.
//!
//! The passes over the pool (count, then draw) run group by group (a group is one hash
//! partition of the curated table, or one downloaded shard); memory is the entry counts plus
//! the dedup set of one group per thread.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema};
use arrow_select::filter::filter_record_batch;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rayon::prelude::*;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed, xxh3_128};

use crate::config::DedupMode;
use crate::error::{CurateError, PqCtx};
use crate::table;
use openwit_chart::LineChart;

/// Drop reasons of dedup.
pub const DUP_URL: &str = "duplicate_url";
pub const DUP_URL_CAPTION: &str = "duplicate_url_caption";

/// The candidate key the draws hash: `xxh3_64(url ++ 0x00 ++ caption)`.
pub fn candidate_key(url: &str, caption: &str) -> u64 {
    let mut b = Vec::with_capacity(url.len() + caption.len() + 1);
    b.extend_from_slice(url.as_bytes());
    b.push(0);
    b.extend_from_slice(caption.as_bytes());
    xxh3_64(&b)
}

/// The uniform [0, 1) draw for (candidate key, entry id) under `seed`.
pub fn draw(seed: u64, key: u64, entry: u32) -> f64 {
    let mut b = [0u8; 12];
    b[..8].copy_from_slice(&key.to_le_bytes());
    b[8..].copy_from_slice(&entry.to_le_bytes());
    (xxh3_64_with_seed(&b, seed) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// `p[e] = min(1, factor * t / count[e])` (1 for entries without matches).
pub fn probabilities(counts: &[u64], t: u64, factor: f64) -> Vec<f64> {
    counts
        .iter()
        .map(|&c| {
            if c == 0 {
                1.0
            } else {
                (factor * t as f64 / c as f64).min(1.0)
            }
        })
        .collect()
}

/// Whether a candidate with these matched entries is kept.
pub fn keep(seed: u64, key: u64, ids: &[i32], p: &[f64]) -> bool {
    ids.iter().any(|&e| {
        let pe = p.get(e as usize).copied().unwrap_or(0.0);
        pe >= 1.0 || draw(seed, key, e as u32) < pe
    })
}

/// One group of input files (in order) and the output it becomes.
#[derive(Debug, Clone)]
pub struct Group {
    pub output: PathBuf,
    pub files: Vec<PathBuf>,
}

/// What the count pass found.
#[derive(Debug, Default)]
pub struct Counted {
    pub counts: Vec<u64>,
    pub rows: u64,
    pub unique: u64,
    pub drops: openwit_core::Drops,
}

/// What the draw pass wrote.
#[derive(Debug, Default)]
pub struct Drawn {
    pub kept_per_entry: Vec<u64>,
    pub rows: u64,
    pub kept: u64,
}

struct Dedup {
    mode: DedupMode,
    seen: HashSet<u128>,
}

impl Dedup {
    fn new(mode: DedupMode) -> Self {
        Dedup {
            mode,
            seen: HashSet::new(),
        }
    }
    /// Whether this is the first occurrence (in reading order); otherwise the drop reason.
    fn first(&mut self, url: &str, caption: &str) -> Result<(), &'static str> {
        let h = match self.mode {
            DedupMode::None => return Ok(()),
            DedupMode::Url => xxh3_128(url.as_bytes()),
            DedupMode::UrlCaption => {
                let mut b = Vec::with_capacity(url.len() + caption.len() + 1);
                b.extend_from_slice(url.as_bytes());
                b.push(0);
                b.extend_from_slice(caption.as_bytes());
                xxh3_128(&b)
            }
        };
        if self.seen.insert(h) {
            Ok(())
        } else {
            Err(match self.mode {
                DedupMode::Url => DUP_URL,
                _ => DUP_URL_CAPTION,
            })
        }
    }
}

fn reader(
    path: &Path,
    columns: Option<&[&str]>,
) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader, CurateError> {
    let f = std::fs::File::open(path).pq(path)?;
    let mut b = ParquetRecordBatchReaderBuilder::try_new(f)
        .pq(path)?
        .with_batch_size(8192);
    if let Some(cols) = columns {
        let schema = b.parquet_schema();
        let idx: Vec<usize> = (0..schema.num_columns())
            .filter(|&i| {
                let path = schema.column(i).path().parts()[0].clone();
                cols.contains(&path.as_str())
            })
            .collect();
        let mask = ProjectionMask::leaves(schema, idx);
        b = b.with_projection(mask);
    }
    b.build().pq(path)
}

/// Pass 1: dedup each group and count matches per entry over the unique candidates.
pub fn count_pass(
    groups: &[Group],
    entries: usize,
    dedup: DedupMode,
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<Counted, CurateError> {
    groups
        .par_iter()
        .map(|g| {
            let mut c = Counted {
                counts: vec![0; entries],
                ..Default::default()
            };
            let mut d = Dedup::new(dedup);
            for path in &g.files {
                for batch in reader(path, Some(&["url", "caption", "entry_ids"]))? {
                    if cancelled() {
                        return Err(openwit_core::Error::Interrupted.into());
                    }
                    let batch = batch.pq(path)?;
                    let urls = table::str_col(&batch, "url", path)?;
                    let caps = table::str_col(&batch, "caption", path)?;
                    let ids =
                        table::entry_ids_col(&batch).ok_or_else(|| CurateError::Candidates {
                            path: path.clone(),
                            msg: "no list<int32> `entry_ids` column".into(),
                            fix: "this file was not written by the curate stage; rerun it".into(),
                        })?;
                    for i in 0..batch.num_rows() {
                        c.rows += 1;
                        if let Err(reason) = d.first(urls.value(i), caps.value(i)) {
                            c.drops.inc(reason);
                            continue;
                        }
                        c.unique += 1;
                        for &e in table::ids_of(&ids, i) {
                            if let Some(n) = c.counts.get_mut(e as usize) {
                                *n += 1;
                            }
                        }
                    }
                }
            }
            Ok(c)
        })
        .try_reduce(
            || Counted {
                counts: vec![0; entries],
                ..Default::default()
            },
            |mut a, b| {
                for (x, y) in a.counts.iter_mut().zip(&b.counts) {
                    *x += y;
                }
                a.rows += b.rows;
                a.unique += b.unique;
                a.drops.merge(&b.drops);
                Ok(a)
            },
        )
}

/// Pass 2: dedup again (same order, same result), draw, and write each group's output with
/// every input column except `seq`, plus `kept`. `p = None` keeps everything.
pub fn draw_pass(
    groups: &[Group],
    entries: usize,
    dedup: DedupMode,
    seed: u64,
    p: Option<&[f64]>,
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<Drawn, CurateError> {
    groups
        .par_iter()
        .map(|g| {
            let mut out = Drawn {
                kept_per_entry: vec![0; entries],
                ..Default::default()
            };
            let mut d = Dedup::new(dedup);
            let mut writer = None;
            for path in &g.files {
                for batch in reader(path, None)? {
                    if cancelled() {
                        return Err(openwit_core::Error::Interrupted.into());
                    }
                    let batch = batch.pq(path)?;
                    let urls = table::str_col(&batch, "url", path)?;
                    let caps = table::str_col(&batch, "caption", path)?;
                    let ids =
                        table::entry_ids_col(&batch).ok_or_else(|| CurateError::Candidates {
                            path: path.clone(),
                            msg: "no list<int32> `entry_ids` column".into(),
                            fix: "this file was not written by the curate stage; rerun it".into(),
                        })?;
                    let mut unique = Vec::with_capacity(batch.num_rows());
                    let mut kept = Vec::with_capacity(batch.num_rows());
                    for i in 0..batch.num_rows() {
                        let (u, c) = (urls.value(i), caps.value(i));
                        let first = d.first(u, c).is_ok();
                        unique.push(first);
                        if !first {
                            continue;
                        }
                        let row_ids = table::ids_of(&ids, i);
                        let k = match p {
                            None => true,
                            Some(p) => keep(seed, candidate_key(u, c), row_ids, p),
                        };
                        out.rows += 1;
                        if k {
                            out.kept += 1;
                            for &e in row_ids {
                                if let Some(n) = out.kept_per_entry.get_mut(e as usize) {
                                    *n += 1;
                                }
                            }
                        }
                        kept.push(k);
                    }
                    let batch =
                        filter_record_batch(&batch, &BooleanArray::from(unique)).pq(path)?;
                    let batch = with_kept(&batch, kept, path)?;
                    let w = match &mut writer {
                        Some(w) => w,
                        None => writer.insert(table::writer(&g.output, batch.schema(), true)?),
                    };
                    w.write(&batch).pq(&g.output)?;
                }
            }
            match writer {
                Some(w) => {
                    w.close().pq(&g.output)?;
                }
                None => {
                    // An empty group still gets its (empty) output, so names stay fixed.
                    let schema = match g.files.first() {
                        Some(f) => {
                            let b = ParquetRecordBatchReaderBuilder::try_new(
                                std::fs::File::open(f).pq(f)?,
                            )
                            .pq(f)?;
                            let empty = RecordBatch::new_empty(b.schema().clone());
                            with_kept(&empty, Vec::new(), f)?.schema()
                        }
                        None => table::curated_schema(),
                    };
                    table::writer(&g.output, schema, true)?
                        .close()
                        .pq(&g.output)?;
                }
            }
            Ok(out)
        })
        .try_reduce(
            || Drawn {
                kept_per_entry: vec![0; entries],
                ..Default::default()
            },
            |mut a, b| {
                for (x, y) in a.kept_per_entry.iter_mut().zip(&b.kept_per_entry) {
                    *x += y;
                }
                a.rows += b.rows;
                a.kept += b.kept;
                Ok(a)
            },
        )
}

fn with_kept(
    batch: &RecordBatch,
    kept: Vec<bool>,
    path: &Path,
) -> Result<RecordBatch, CurateError> {
    let schema = batch.schema();
    let mut fields: Vec<Field> = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        if f.name() != "seq" {
            fields.push(f.as_ref().clone());
            cols.push(c.clone());
        }
    }
    fields.push(Field::new(
        openwit_core::artifact::curated::KEPT,
        DataType::Boolean,
        false,
    ));
    cols.push(Arc::new(BooleanArray::from(kept)));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).pq(path)
}

/// Writes `entry_counts.parquet`: entry, id, matches (before balancing), expected_kept
/// (`matches * p`, the entry's own draws), kept (kept candidates that match the entry).
pub fn write_entry_counts(
    path: &Path,
    entries: &[String],
    counts: &[u64],
    p: &[f64],
    kept: &[u64],
) -> Result<(), CurateError> {
    let schema = openwit_core::artifact::entry_counts::schema();
    let mut w = table::writer(path, schema.clone(), true)?;
    let n = entries.len();
    let step = 65536;
    let mut start = 0;
    while start < n.max(1) && start < n {
        let end = (start + step).min(n);
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(entries[start..end].iter())),
            Arc::new(Int32Array::from_iter_values((start..end).map(|i| i as i32))),
            Arc::new(Int64Array::from_iter_values(
                counts[start..end].iter().map(|&c| c as i64),
            )),
            Arc::new(Float64Array::from_iter_values(
                (start..end).map(|i| counts[i] as f64 * p[i]),
            )),
            Arc::new(Int64Array::from_iter_values(
                kept[start..end].iter().map(|&c| c as i64),
            )),
        ];
        w.write(&RecordBatch::try_new(schema.clone(), cols).pq(path)?)
            .pq(path)?;
        start = end;
    }
    w.close().pq(path)?;
    Ok(())
}

/// A log-log SVG of matches per entry (entries ranked by matches) before and after balancing,
/// with the threshold `t` drawn as a line.
pub fn plot_svg(before: &[u64], after: &[u64], t: u64, title: &str) -> String {
    let mut chart = LineChart::new(
        title,
        "entries ranked by matches",
        "matched pairs per entry",
    )
    .log(true)
    .size(760.0, 480.0)
    .background("white");
    for (counts, color, label) in [(before, "#1f77b4", "before"), (after, "#d62728", "after")] {
        let mut ranked: Vec<u64> = counts.iter().copied().filter(|&c| c > 0).collect();
        if ranked.is_empty() {
            continue;
        }
        ranked.sort_unstable_by(|x, y| y.cmp(x));
        let name = format!("{label} ({} entries)", ranked.len());
        chart = chart.series_in(&name, log_spaced_ranks(&ranked), color);
    }
    if t > 0 {
        chart = chart.rule(t as f64, &format!("t = {t}"));
    }
    chart.svg()
}

/// (rank, count) of `ranked` (largest first) at log-spaced ranks, the last one included: the
/// plot stays small whatever the number of entries.
fn log_spaced_ranks(ranked: &[u64]) -> Vec<(f64, f64)> {
    let n = ranked.len();
    let mut pts = Vec::new();
    let mut r = 1.0f64;
    loop {
        let i = (r as usize).min(n) - 1;
        pts.push(((i + 1) as f64, ranked[i] as f64));
        if i + 1 >= n {
            break;
        }
        r = (r * 1.02).max(r + 1.0);
    }
    pts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_uniform_and_stable() {
        // Fixed values: the draw must never change across versions and machines.
        let k = candidate_key("http://a/x.jpg", "a dog");
        assert_eq!(k, candidate_key("http://a/x.jpg", "a dog"));
        assert_ne!(k, candidate_key("http://a/x.jp", "ga dog"));
        let d = draw(0, k, 7);
        assert!((0.0..1.0).contains(&d));
        assert_eq!(d, draw(0, k, 7));
        assert_ne!(d, draw(1, k, 7));
        let n = 200_000;
        let mean: f64 = (0..n).map(|i| draw(3, i, 1)).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.005, "{mean}");
        let below = (0..n).filter(|&i| draw(3, i, 2) < 0.1).count() as f64 / n as f64;
        assert!((below - 0.1).abs() < 0.005, "{below}");
    }

    #[test]
    fn probabilities_and_keep() {
        let p = probabilities(&[0, 10, 40_000, 200_000], 20_000, 1.0);
        assert_eq!(p, vec![1.0, 1.0, 0.5, 0.1]);
        let p2 = probabilities(&[40_000], 20_000, 1.5);
        assert_eq!(p2, vec![0.75]);
        // An entry with p = 1 keeps the candidate whatever its other entries.
        assert!(keep(0, 1, &[3, 1], &p));
        assert!(!keep(0, 1, &[], &p));
        // Monotone: kept at a smaller p implies kept at a larger p.
        for key in 0..10_000u64 {
            if keep(9, key, &[3], &[0.0, 0.0, 0.0, 0.1]) {
                assert!(keep(9, key, &[3], &[0.0, 0.0, 0.0, 0.3]));
            }
        }
    }

    #[test]
    fn plot_is_svg() {
        let before: Vec<u64> = (1..2000u64).map(|i| 1_000_000 / i).collect();
        let after: Vec<u64> = before.iter().map(|&c| c.min(20_000)).collect();
        let s = plot_svg(&before, &after, 20_000, "matches <per> entry");
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert!(s.contains("before (1999 entries)") && s.contains("t = 20000"));
        assert!(s.contains("&lt;per&gt;"));
        assert!(s.len() < 100_000);
    }
}
