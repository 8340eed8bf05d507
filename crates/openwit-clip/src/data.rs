//! Webdataset shards -> batches: the layout `openwit download` and img2dataset write (`KEY.jpg`,
//! `KEY.txt`, optional `KEY.json`, `KEY.cls`), local paths and brace patterns
//! (`shards/{00000..00099}.tar`).
//!
//! One reader thread streams the shards (their order shuffled per epoch) through a shuffle
//! buffer and cuts batches; a pool of worker threads decodes, augments (random resized crop,
//! scale 0.9-1.0, to the model's resolution) and tokenizes them; up to `prefetch` finished
//! batches wait for the trainer. Everything random is seeded by (seed, epoch, batch), so a
//! stream restarted at a [`Position`] yields the same batches as the uninterrupted one.
//!
//! Across the ranks of a data-parallel job ([`Share`], [`Loader::start_share`]): each process
//! has one shard reader (its worker threads decode the batches that reader cuts, they read no
//! shard), so the readers of a job are its ranks. With at least as many shards as ranks, rank r
//! of N reads the shards `i` with `i mod N = r`, disjoint from the other ranks' (every sample once
//! per epoch in the job). With fewer shards than ranks, every rank resamples instead
//! (OpenCLIP's `--dataset-resampled`): each epoch it draws one shard, with replacement, from the
//! whole list, with a generator seeded by (seed, epoch, rank). Each rank's stream is seeded by
//! (seed, rank), so it is deterministic for a seed, and one process (rank 0 of 1) reads exactly
//! what it read before shares existed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, bounded};
use fast_image_resize as fr;
use image::RgbImage;
use openwit_core::Drops;
use openwit_shard::ShardReader;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::error::{ClipError, Result};
use crate::tokenizer::Tokenizer;

/// CLIP's image normalization.
pub const MEAN: [f64; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
pub const STD: [f64; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// Expands `{a..b}` numeric ranges (zero-padded to the width of `a`) and `{x,y}` lists.
pub fn expand_braces(pattern: &str) -> Vec<String> {
    let Some(open) = pattern.find('{') else {
        return vec![pattern.to_string()];
    };
    let Some(close) = pattern[open..].find('}').map(|c| c + open) else {
        return vec![pattern.to_string()];
    };
    let (head, body, tail) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    let items: Vec<String> = if let Some((a, b)) = body.split_once("..") {
        match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(x), Ok(y)) if x <= y => (x..=y).map(|i| format!("{i:0w$}", w = a.len())).collect(),
            _ => vec![format!("{{{body}}}")],
        }
    } else {
        body.split(',').map(str::to_string).collect()
    };
    items
        .iter()
        .flat_map(|i| expand_braces(&format!("{head}{i}{tail}")))
        .collect()
}

/// Resolves shard patterns: brace patterns, folders (their `*.tar`, sorted) and files.
pub fn resolve_shards(patterns: &[String], base: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in patterns {
        for s in expand_braces(p) {
            let path = base.join(&s);
            if path.is_dir() {
                let mut tars: Vec<PathBuf> = std::fs::read_dir(&path)
                    .map_err(|e| ClipError::io(&path, e))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "tar"))
                    .collect();
                tars.sort();
                out.extend(tars);
            } else if path.is_file() {
                out.push(path);
            } else {
                return Err(ClipError::Config(format!(
                    "shard `{}` (from pattern `{p}`) does not exist; check the path or the brace range",
                    path.display()
                )));
            }
        }
    }
    if out.is_empty() {
        return Err(ClipError::Config(format!(
            "no shards matched {patterns:?}; give `.tar` files, folders or brace patterns like `shards/{{00000..00009}}.tar`"
        )));
    }
    Ok(out)
}

/// One sample as stored in a shard.
#[derive(Debug, Clone)]
pub struct RawSample {
    pub key: String,
    pub image: Vec<u8>,
    pub text: String,
    /// The `.cls` entry (an integer class index), if any.
    pub class: Option<i64>,
}

#[derive(Default)]
struct Partial {
    key: String,
    /// The image member so far and its place in the preference order.
    image: Option<(usize, Vec<u8>)>,
    text: Option<String>,
    class: Option<i64>,
}

/// The image member OpenCLIP's training loader takes (`rename(image="jpg;png;jpeg;webp")`):
/// the first of these extensions a sample has.
pub const TRAINING_IMAGES: [&str; 4] = ["jpg", "png", "jpeg", "webp"];

/// The image member clip_benchmark's webdataset reader takes
/// (`to_tuple(["webp", "png", "jpg", "jpeg"], ...)`).
pub const BENCHMARK_IMAGES: [&str; 4] = ["webp", "png", "jpg", "jpeg"];

/// Reads one tar, calling `f` for each complete sample (image from the first of
/// [`TRAINING_IMAGES`] it has, text from `txt`); incomplete samples and unreadable tars are
/// counted in `drops`. `f` returns false to stop.
pub fn read_tar(path: &Path, drops: &mut Drops, f: impl FnMut(RawSample) -> bool) {
    read_tar_samples(path, drops, true, &TRAINING_IMAGES, f)
}

/// [`read_tar`], where with `need_text` false a sample with an image and a `.cls` entry but no
/// `txt` is complete too (its text empty): clip_benchmark's classification shards hold only
/// `KEY.cls` and the image. `images`: the image extensions, preferred first (a sample's member
/// names compared without case, as webdataset lower-cases them).
pub fn read_tar_samples(
    path: &Path,
    drops: &mut Drops,
    need_text: bool,
    images: &[&str],
    mut f: impl FnMut(RawSample) -> bool,
) {
    let mut members = match ShardReader::open(path) {
        Ok(r) => r.members(),
        Err(e) => {
            tracing::warn!(shard = %path.display(), error = %e, "cannot open shard");
            drops.inc("shard_unreadable");
            return;
        }
    };
    let mut cur = Partial::default();
    let mut flush = |cur: &mut Partial, drops: &mut Drops| -> bool {
        let p = std::mem::take(cur);
        if p.key.is_empty() {
            return true;
        }
        let text = match (p.text, need_text, p.class) {
            (None, false, Some(_)) => Some(String::new()),
            (t, _, _) => t,
        };
        match (p.image, text) {
            (Some((_, image)), Some(text)) => f(RawSample {
                key: p.key,
                image,
                text,
                class: p.class,
            }),
            (None, _) => {
                drops.inc("no_image");
                true
            }
            (_, None) => {
                drops.inc("no_text");
                true
            }
        }
    };
    for member in members.by_ref() {
        // A member the tar ends inside of still counts with what was there (then the error).
        let m = match member {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(shard = %path.display(), error = %e, "truncated or corrupt shard; skipping its rest");
                drops.inc("shard_truncated");
                break;
            }
        };
        // A name without a dot belongs to no sample.
        let Some(key) = m.key else { continue };
        if key != cur.key {
            if !flush(&mut cur, drops) {
                return;
            }
            cur.key = key;
        }
        let (ext, buf) = (m.member.ext, m.member.data);
        let is = |e: &str| ext.eq_ignore_ascii_case(e);
        if let Some(rank) = images.iter().position(|e| is(e)) {
            if cur.image.as_ref().is_none_or(|(r, _)| rank < *r) {
                cur.image = Some((rank, buf));
            }
        } else if is("txt") {
            cur.text = Some(String::from_utf8_lossy(&buf).into_owned());
        } else if is("cls") {
            cur.class = String::from_utf8_lossy(&buf).trim().parse().ok();
        }
    }
    flush(&mut cur, drops);
    // Links, devices and sparse files the reader skipped: counted, never silent (folders are
    // no sample's member).
    let skipped = members.skipped();
    drops.add("tar_not_a_file", skipped.total() - skipped.folders);
}

/// Where a stream is: the epoch and the samples of that epoch already handed out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub epoch: u64,
    pub sample: u64,
}

/// This process's place among the shard readers of a data-parallel job: rank `rank` of
/// `world` (one process: rank 0 of 1, which reads every shard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub rank: usize,
    pub world: usize,
}

impl Default for Share {
    fn default() -> Self {
        Share { rank: 0, world: 1 }
    }
}

impl Share {
    /// Whether the job resamples: fewer shards than readers.
    pub fn resampled(&self, shards: usize) -> bool {
        shards < self.world
    }

    /// The seed of this rank's stream (shard order, shuffle buffer, crops, draws): `seed`
    /// itself on rank 0, so one process's stream is the one it always was.
    pub fn seed(&self, seed: u64) -> u64 {
        if self.rank == 0 {
            seed
        } else {
            seed ^ (self.rank as u64)
                .wrapping_mul(0xA076_1D64_78BD_642F)
                .rotate_left(17)
        }
    }

    /// The shards this rank reads in `epoch`, in reading order. Disjoint ranks: its every
    /// `world`-th shard from `rank` on, shuffled per epoch when `shuffle`. Resampled (fewer
    /// shards than ranks): one shard drawn from the whole list with a generator seeded by
    /// (seed, epoch, rank). Deterministic in (shards, seed, epoch, rank, world).
    pub fn epoch_shards(
        &self,
        shards: &[PathBuf],
        seed: u64,
        epoch: u64,
        shuffle: bool,
    ) -> Vec<PathBuf> {
        let seed = self.seed(seed);
        if self.resampled(shards.len()) {
            if shards.is_empty() {
                return Vec::new();
            }
            let mut rng = epoch_rng(seed, epoch, 3);
            return vec![shards[rng.random_range(0..shards.len())].clone()];
        }
        let mut order: Vec<PathBuf> = shards
            .iter()
            .enumerate()
            .filter(|(i, _)| i % self.world == self.rank)
            .map(|(_, p)| p.clone())
            .collect();
        if shuffle {
            order.shuffle(&mut epoch_rng(seed, epoch, 1));
        }
        order
    }
}

/// Settings of a [`Loader`].
#[derive(Debug, Clone)]
pub struct LoaderConfig {
    pub shards: Vec<PathBuf>,
    pub batch_size: usize,
    pub image_size: u32,
    pub context_length: usize,
    pub workers: usize,
    pub prefetch: usize,
    pub shuffle_buffer: usize,
    pub seed: u64,
    /// Training augmentation (random resized crop) and per-epoch shuffling; off for evaluation
    /// (resize + center crop, shards in order, one pass).
    pub train: bool,
    /// Put each batch's images in page-locked host memory for this (CUDA) device, on the
    /// worker thread, so the trainer's copy to the GPU runs at full speed without a staging copy.
    pub pin_memory: Option<tch::Device>,
    /// Leave out the samples of the held-out split ([`held_out`] with this percentage; 0: none),
    /// counted as `held_out` in the drops.
    pub held_out_percent: u32,
}

/// Whether a sample is in the held-out split of `percent`%: decided by its image (FNV-1a 64 of
/// the image bytes as the shard stores them, modulo 100), so the same picture is always on the
/// same side, whatever its key, caption or shard, and in every run.
pub fn held_out(image: &[u8], percent: u32) -> bool {
    if percent == 0 {
        return false;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in image {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % 100 < percent as u64
}

/// Writes `out` (`shard<TAB>key<TAB>part` a line, part `train` or `held_out`) for every sample
/// of `shards`, atomically: the record of the split that [`held_out`] makes. Returns (train,
/// held-out) sample counts.
pub fn write_split(shards: &[PathBuf], percent: u32, out: &Path) -> Result<(u64, u64)> {
    let mut tsv = String::from("shard\tkey\tpart\n");
    let (mut train, mut held) = (0u64, 0u64);
    let mut drops = Drops::default();
    for shard in shards {
        let name = shard
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        read_tar(shard, &mut drops, |s| {
            let h = held_out(&s.image, percent);
            if h {
                held += 1;
            } else {
                train += 1;
            }
            tsv.push_str(&format!(
                "{name}\t{}\t{}\n",
                s.key,
                if h { "held_out" } else { "train" }
            ));
            true
        });
    }
    openwit_core::atomic::write_atomic(out, tsv.as_bytes())
        .map_err(|e| ClipError::Data(format!("{}: {e}", out.display())))?;
    Ok((train, held))
}

/// A batch ready for the model: uint8 images `(N, 3, S, S)` and tokens `(N, L)`.
pub struct Batch {
    pub images: Tensor,
    pub tokens: Tensor,
    pub texts: Vec<String>,
    pub classes: Vec<Option<i64>>,
    /// The stream position after this batch.
    pub position: Position,
}

struct Job {
    index: u64,
    samples: Vec<RawSample>,
    position: Position,
}

/// Streams batches from shards on background threads.
pub struct Loader {
    rx: Receiver<(u64, Batch)>,
    pending: BTreeMap<u64, Batch>,
    next: u64,
    threads: Vec<JoinHandle<()>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    drops: Arc<Mutex<Drops>>,
    done_rx: Receiver<u64>,
    total_batches: Option<u64>,
}

impl Loader {
    /// Starts the threads, resuming at `from`: one process, which reads every shard.
    pub fn start(cfg: LoaderConfig, tokenizer: Arc<Tokenizer>, from: Position) -> Loader {
        Self::start_share(cfg, Share::default(), tokenizer, from)
    }

    /// Starts the threads of rank `share.rank` of `share.world`, resuming at `from` (this
    /// rank's own position): it reads its [`Share::epoch_shards`], with its own seed
    /// ([`Share::seed`]).
    pub fn start_share(
        mut cfg: LoaderConfig,
        share: Share,
        tokenizer: Arc<Tokenizer>,
        from: Position,
    ) -> Loader {
        if share.world > 1 && share.resampled(cfg.shards.len()) {
            tracing::info!(
                shards = cfg.shards.len(),
                ranks = share.world,
                "fewer shards than ranks: each rank draws its shards with replacement, one per epoch"
            );
        }
        let all = std::mem::take(&mut cfg.shards);
        let base_seed = cfg.seed;
        let plan =
            move |epoch: u64, shuffle: bool| share.epoch_shards(&all, base_seed, epoch, shuffle);
        cfg.seed = share.seed(base_seed);
        let (job_tx, job_rx) = bounded::<Job>(cfg.workers.max(1) * 2);
        let (out_tx, out_rx) = bounded::<(u64, Batch)>(cfg.prefetch.max(1));
        let (done_tx, done_rx) = bounded::<u64>(1);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let drops = Arc::new(Mutex::new(Drops::default()));
        let mut threads = Vec::new();
        {
            let cfg = cfg.clone();
            let stop = stop.clone();
            let drops = drops.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("clip-reader".into())
                    .spawn(move || reader(cfg, plan, from, job_tx, done_tx, stop, drops))
                    .expect("cannot start the shard reader"),
            );
        }
        for w in 0..cfg.workers.max(1) {
            let rx = job_rx.clone();
            let tx = out_tx.clone();
            let tok = tokenizer.clone();
            let cfg = cfg.clone();
            let drops = drops.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("clip-worker-{w}"))
                    .spawn(move || {
                        for job in rx {
                            let index = job.index;
                            let b = make_batch(&cfg, &tok, job, &drops);
                            if tx.send((index, b)).is_err() {
                                return;
                            }
                        }
                    })
                    .expect("cannot start a data worker"),
            );
        }
        Loader {
            rx: out_rx,
            pending: BTreeMap::new(),
            next: 0,
            threads,
            stop,
            drops,
            done_rx,
            total_batches: None,
        }
    }

    /// The next batch in order, or None when a one-pass (evaluation) stream is exhausted.
    pub fn next_batch(&mut self) -> Option<Batch> {
        loop {
            if let Some(b) = self.pending.remove(&self.next) {
                self.next += 1;
                return Some(b);
            }
            if let Some(t) = self.total_batches
                && self.next >= t
            {
                return None;
            }
            crossbeam_channel::select! {
                recv(self.rx) -> msg => match msg {
                    Ok((i, b)) => { self.pending.insert(i, b); }
                    Err(_) => return None,
                },
                recv(self.done_rx) -> msg => {
                    if let Ok(total) = msg { self.total_batches = Some(total); }
                }
            }
        }
    }

    /// Samples dropped so far, by reason.
    pub fn drops(&self) -> Drops {
        self.drops.lock().unwrap().clone()
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // Unblock the threads: drain what they try to send.
        while self.rx.try_recv().is_ok() {}
        let rx = self.rx.clone();
        let drain = std::thread::spawn(move || while rx.recv().is_ok() {});
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        drop(drain);
    }
}

fn epoch_rng(seed: u64, epoch: u64, salt: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(
        seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03),
    )
}

fn reader(
    cfg: LoaderConfig,
    plan: impl Fn(u64, bool) -> Vec<PathBuf>,
    from: Position,
    tx: Sender<Job>,
    done: Sender<u64>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    drops: Arc<Mutex<Drops>>,
) {
    let mut epoch = from.epoch;
    let mut skip = from.sample;
    let mut index = 0u64;
    let mut batch: Vec<RawSample> = Vec::with_capacity(cfg.batch_size);
    loop {
        let order = plan(epoch, cfg.train);
        // The shuffle buffer's generator: after the shuffle's draws, as it always was.
        let mut rng = epoch_rng(cfg.seed, epoch, 1);
        if cfg.train {
            order.clone().shuffle(&mut rng);
        }
        let mut buffer: Vec<RawSample> = Vec::new();
        let mut in_epoch = 0u64;
        let mut any = false;
        let mut emit = |s: RawSample, batch: &mut Vec<RawSample>| -> bool {
            any = true;
            in_epoch += 1;
            if skip > 0 {
                skip -= 1;
                return true;
            }
            batch.push(s);
            if batch.len() == cfg.batch_size {
                let job = Job {
                    index,
                    samples: std::mem::take(batch),
                    position: Position {
                        epoch,
                        sample: in_epoch,
                    },
                };
                index += 1;
                if stop.load(std::sync::atomic::Ordering::Relaxed) || tx.send(job).is_err() {
                    return false;
                }
            }
            true
        };
        let mut local = Drops::default();
        let mut held = 0u64;
        let mut alive = true;
        for shard in &order {
            read_tar(shard, &mut local, |s| {
                if held_out(&s.image, cfg.held_out_percent) {
                    held += 1;
                    return true;
                }
                if !cfg.train || cfg.shuffle_buffer <= 1 {
                    alive = emit(s, &mut batch);
                    return alive;
                }
                if buffer.len() < cfg.shuffle_buffer {
                    buffer.push(s);
                    return true;
                }
                let i = rng.random_range(0..buffer.len());
                let out = std::mem::replace(&mut buffer[i], s);
                alive = emit(out, &mut batch);
                alive
            });
            if !alive {
                return;
            }
        }
        while !buffer.is_empty() {
            let i = rng.random_range(0..buffer.len());
            let s = buffer.swap_remove(i);
            if !emit(s, &mut batch) {
                return;
            }
        }
        if held > 0 {
            local.add("held_out", held);
        }
        drops.lock().unwrap().merge(&local);
        if !any {
            tracing::error!("the shards hold no usable sample");
            let _ = done.send(index);
            return;
        }
        if !cfg.train {
            if !batch.is_empty() {
                let job = Job {
                    index,
                    samples: std::mem::take(&mut batch),
                    position: Position {
                        epoch,
                        sample: in_epoch,
                    },
                };
                index += 1;
                if tx.send(job).is_err() {
                    return;
                }
            }
            let _ = done.send(index);
            return;
        }
        // A position past the end of its epoch (one from a job with another number of ranks,
        // whose shares were larger): the next epoch starts from its beginning.
        skip = 0;
        epoch += 1;
    }
}

/// The size a `w x h` picture is resized to before the eval transform's center crop, as
/// torchvision's `Resize(size)` (OpenCLIP's eval transform) computes it: the short side becomes
/// `size`, the long side `size * long / short` rounded down (Python's `int()`).
fn eval_resized(w: u32, h: u32, size: u32) -> (u32, u32) {
    let long = |l: u32, s: u32| ((size as u64 * l as u64) as f64 / s as f64) as u32;
    if w <= h {
        (size, long(h, w).max(size))
    } else {
        (long(w, h).max(size), size)
    }
}

/// Where a center crop of `size` starts in `n` pixels, as torchvision's `CenterCrop`:
/// `int(round((n - size) / 2))`, Python's `round` taking a half to the even neighbour.
fn crop_offset(n: u32, size: u32) -> u32 {
    let d = n.saturating_sub(size);
    let half = d / 2;
    if d % 2 == 1 && half % 2 == 1 {
        half + 1
    } else {
        half
    }
}

/// torchvision's `RandomResizedCrop` box (scale 0.9-1.0, ratio 3/4-4/3), center crop fallback.
fn random_crop(w: u32, h: u32, rng: &mut ChaCha8Rng) -> (u32, u32, u32, u32) {
    let area = w as f64 * h as f64;
    let (lr0, lr1) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
    for _ in 0..10 {
        let target = area * rng.random_range(0.9..=1.0);
        let ratio = rng.random_range(lr0..=lr1).exp();
        let cw = (target * ratio).sqrt().round() as u32;
        let ch = (target / ratio).sqrt().round() as u32;
        if cw > 0 && ch > 0 && cw <= w && ch <= h {
            let x = rng.random_range(0..=w - cw);
            let y = rng.random_range(0..=h - ch);
            return (x, y, cw, ch);
        }
    }
    let r = w as f64 / h as f64;
    let (cw, ch) = if r < 0.75 {
        (w, (w as f64 / 0.75).round() as u32)
    } else if r > 4.0 / 3.0 {
        ((h as f64 * 4.0 / 3.0).round() as u32, h)
    } else {
        (w, h)
    };
    (
        (w - cw.min(w)) / 2,
        (h - ch.min(h)) / 2,
        cw.min(w),
        ch.min(h),
    )
}

pub use openwit_shard::rgb::{decode, rgb_on_white};

/// Decodes ([`decode`]: what PIL accepts) and transforms one image to `size x size` RGB
/// (transparency on white, as `download` stores pictures: [`rgb_on_white`]): random resized crop
/// for training, otherwise OpenCLIP's eval transform (torchvision's `Resize(size)` of the short
/// side, bicubic, and `CenterCrop(size)`, with their sizes and offsets), which
/// `tests/real_pictures.rs` checks against OpenCLIP's own on real photographs and drawings.
pub fn transform(bytes: &[u8], size: u32, train: Option<&mut ChaCha8Rng>) -> Option<RgbImage> {
    transform_rgb(rgb_on_white(decode(bytes).ok()?), size, train)
}

/// [`transform`] of a picture already decoded and composited on white.
pub fn transform_rgb(img: RgbImage, size: u32, train: Option<&mut ChaCha8Rng>) -> Option<RgbImage> {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return None;
    }
    match train {
        Some(rng) => {
            let (x, y, cw, ch) = random_crop(w, h, rng);
            let crop = (x as f64, y as f64, cw as f64, ch as f64);
            resize_bicubic(&img, crop, (size, size))
        }
        None => {
            let (nw, nh) = eval_resized(w, h, size);
            let r = resize_bicubic(&img, (0.0, 0.0, w as f64, h as f64), (nw, nh))?;
            Some(
                image::imageops::crop_imm(
                    &r,
                    crop_offset(nw, size),
                    crop_offset(nh, size),
                    size,
                    size,
                )
                .to_image(),
            )
        }
    }
}

thread_local! {
    /// One resizer per worker thread: it keeps its scratch buffers between images.
    static RESIZER: std::cell::RefCell<fr::Resizer> = std::cell::RefCell::new(fr::Resizer::new());
}

/// Bicubic (Catmull-Rom, PIL's and so torchvision's BICUBIC) resize of the region `crop`
/// (x, y, width, height, whole pixels) of `img` to `to`, with `fast_image_resize`'s SIMD
/// convolution: the loader's largest per-image cost with `image`'s generic resize (1.8 of 2.2
/// CPU ms for a 256 px JPEG to 224 px), which bounded the GPU trainer's throughput on 16 cores.
///
/// The passes run in PIL's order, the rows first and then the columns, each rounded to bytes:
/// `fast_image_resize` on its own runs the columns first, and where a sharp edge overshoots
/// (clip art, text, a small picture made large) the byte rounding between the passes then
/// differs from what OpenCLIP's PIL transform gives by up to a tenth of the range.
fn resize_bicubic(img: &RgbImage, crop: (f64, f64, f64, f64), to: (u32, u32)) -> Option<RgbImage> {
    let (x, y, cw, ch) = crop;
    let rows = ch.round() as u32;
    // The rows: `to.0` wide, the crop's height (no vertical pass: same height, whole top).
    let across = resize_pass(img, (x, y.round(), cw, rows as f64), (to.0, rows))?;
    // The columns: the whole intermediate to `to.1` high (no horizontal pass).
    resize_pass(&across, (0.0, 0.0, to.0 as f64, rows as f64), to)
}

/// One `fast_image_resize` call (it skips a pass whose size and offset do not change).
fn resize_pass(img: &RgbImage, crop: (f64, f64, f64, f64), to: (u32, u32)) -> Option<RgbImage> {
    let (sw, sh) = img.dimensions();
    let src =
        fr::images::TypedImageRef::<fr::pixels::U8x3>::from_buffer(sw, sh, img.as_raw()).ok()?;
    let mut out = vec![0u8; to.0 as usize * to.1 as usize * 3];
    let mut dst =
        fr::images::TypedImage::<fr::pixels::U8x3>::from_buffer(to.0, to.1, &mut out).ok()?;
    let opts = fr::ResizeOptions::new()
        .resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::CatmullRom))
        .crop(crop.0, crop.1, crop.2, crop.3);
    RESIZER
        .with(|r| r.borrow_mut().resize_typed(&src, &mut dst, &opts))
        .ok()?;
    RgbImage::from_raw(to.0, to.1, out)
}

fn make_batch(cfg: &LoaderConfig, tok: &Tokenizer, job: Job, drops: &Mutex<Drops>) -> Batch {
    let s = cfg.image_size;
    let plane = (s * s) as usize;
    let mut pixels: Vec<u8> = Vec::with_capacity(job.samples.len() * 3 * plane);
    let mut texts = Vec::with_capacity(job.samples.len());
    let mut classes = Vec::new();
    let mut bad = 0;
    // Seeded by where the batch ends in its epoch, which a resumed stream reproduces.
    let mut rng = epoch_rng(cfg.seed, job.position.epoch, 2 + job.position.sample);
    for sample in job.samples {
        let img = if cfg.train {
            transform(&sample.image, s, Some(&mut rng))
        } else {
            transform(&sample.image, s, None)
        };
        let Some(img) = img else {
            bad += 1;
            continue;
        };
        // Interleaved RGB -> the three planes of (3, S, S).
        let raw = img.into_raw();
        let base = pixels.len();
        pixels.resize(base + 3 * plane, 0);
        let (r, gb) = pixels[base..].split_at_mut(plane);
        let (g, b) = gb.split_at_mut(plane);
        for (i, px) in raw.chunks_exact(3).enumerate() {
            r[i] = px[0];
            g[i] = px[1];
            b[i] = px[2];
        }
        texts.push(sample.text);
        classes.push(sample.class);
    }
    if bad > 0 {
        drops.lock().unwrap().add("image_undecodable", bad);
    }
    let n = texts.len() as i64;
    let mut images = Tensor::from_slice(&pixels).reshape([n, 3, s as i64, s as i64]);
    if let Some(device) = cfg.pin_memory {
        // `_pin_memory` directly: `pin_memory(device)` is the same operation but warns, on every
        // call, that its device argument is deprecated, and tch 0.24 always passes one.
        // Pageable memory still works (a slower copy), so a failure here is only logged.
        match images.f_internal_pin_memory(device) {
            Ok(pinned) => images = pinned,
            Err(e) => tracing::debug!("pinning a batch failed: {e}"),
        }
    }
    let tokens = tok.tokenize_batch(&texts, cfg.context_length);
    Batch {
        images,
        tokens,
        texts,
        classes,
        position: job.position,
    }
}

/// uint8 `(N, 3, S, S)` -> float normalized with CLIP's mean and std, on `device`.
pub fn normalize_images(images: &Tensor, device: tch::Device) -> Tensor {
    Normalizer::new(device).apply(images)
}

/// CLIP's mean/std normalization with its constants already on the device: a training loop makes
/// one, so no step copies them again (each small host-to-device copy waits for the device).
pub struct Normalizer {
    device: tch::Device,
    mean: Tensor,
    std: Tensor,
}

impl Normalizer {
    pub fn new(device: tch::Device) -> Self {
        let on = |v: &[f64; 3]| {
            Tensor::from_slice(v)
                .to_kind(Kind::Float)
                .to_device(device)
                .reshape([1, 3, 1, 1])
        };
        Normalizer {
            device,
            mean: on(&MEAN),
            std: on(&STD),
        }
    }

    /// uint8 `(N, 3, S, S)` (pinned host memory is copied without waiting) -> normalized float.
    pub fn apply(&self, images: &Tensor) -> Tensor {
        let x = images.to_device_(self.device, Kind::Uint8, true, false);
        (x.to_kind(Kind::Float) / 255.0 - &self.mean) / &self.std
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn braces_expand_like_webdataset() {
        assert_eq!(
            expand_braces("s/{00000..00002}.tar"),
            vec!["s/00000.tar", "s/00001.tar", "s/00002.tar"]
        );
        assert_eq!(
            expand_braces("{a,b}-{1..2}"),
            vec!["a-1", "a-2", "b-1", "b-2"]
        );
        assert_eq!(expand_braces("plain.tar"), vec!["plain.tar"]);
    }

    #[test]
    fn ranks_read_disjoint_shares_or_resample() {
        let shards: Vec<PathBuf> = (0..5).map(|i| PathBuf::from(format!("{i}.tar"))).collect();
        // One process: every shard, in the order the single-process loader always used.
        let one = Share::default().epoch_shards(&shards, 9, 3, true);
        let mut want = shards.clone();
        want.shuffle(&mut epoch_rng(9, 3, 1));
        assert_eq!(one, want);
        assert_eq!(Share::default().epoch_shards(&shards, 9, 3, false), shards);
        // Two ranks: disjoint, together every shard, in every epoch.
        for epoch in 0..3 {
            let a = Share { rank: 0, world: 2 }.epoch_shards(&shards, 9, epoch, true);
            let b = Share { rank: 1, world: 2 }.epoch_shards(&shards, 9, epoch, true);
            assert_eq!((a.len(), b.len()), (3, 2));
            let mut all: Vec<PathBuf> = a.iter().chain(&b).cloned().collect();
            all.sort();
            assert_eq!(all, shards);
        }
        // Fewer shards than ranks: one drawn shard per epoch, deterministic for a seed, and the
        // ranks' draws differ (some rank reads some other shard over a few epochs).
        let few = &shards[..2];
        let draws = |seed: u64| -> Vec<Vec<PathBuf>> {
            (0..3)
                .flat_map(|rank| {
                    (0..8).map(move |epoch| {
                        Share { rank, world: 3 }.epoch_shards(few, seed, epoch, true)
                    })
                })
                .collect()
        };
        let d = draws(9);
        assert!(d.iter().all(|v| v.len() == 1 && few.contains(&v[0])));
        assert_eq!(d, draws(9));
        assert_ne!(d, draws(10));
        assert!(d.iter().any(|v| v[0] == few[0]) && d.iter().any(|v| v[0] == few[1]));
        assert!(Share { rank: 0, world: 3 }.resampled(2));
        assert!(!Share { rank: 0, world: 2 }.resampled(2));
        // Rank 0 keeps the job's seed; the others get their own.
        assert_eq!(Share { rank: 0, world: 4 }.seed(9), 9);
        assert_ne!(Share { rank: 1, world: 4 }.seed(9), 9);
        assert_ne!(
            Share { rank: 1, world: 4 }.seed(9),
            Share { rank: 2, world: 4 }.seed(9)
        );
    }

    #[test]
    fn crops_keep_most_of_the_image() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..100 {
            let (x, y, w, h) = random_crop(100, 100, &mut rng);
            assert!(x + w <= 100 && y + h <= 100);
            let frac = (w * h) as f64 / 10000.0;
            assert!(frac > 0.85, "{frac}");
        }
        // Too wide for any 0.9-1.0 crop with ratio 3/4-4/3: torchvision's central 4:3 fallback.
        assert_eq!(random_crop(200, 100, &mut rng), (33, 0, 133, 100));
    }

    #[test]
    fn transparency_is_composited_on_white() {
        // a drawing's PNG: opaque red, half-transparent blue, and fully transparent pixels that
        // store black (what dropping alpha would show)
        let mut img = image::RgbaImage::new(3, 1);
        img.put_pixel(0, 0, image::Rgba([255, 0, 0, 255]));
        img.put_pixel(1, 0, image::Rgba([0, 0, 255, 128]));
        img.put_pixel(2, 0, image::Rgba([0, 0, 0, 0]));
        let mut png = Vec::new();
        image::DynamicImage::ImageRgba8(img)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let rgb = rgb_on_white(image::load_from_memory(&png).unwrap());
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 0, 0]);
        assert_eq!(rgb.get_pixel(1, 0).0, [127, 127, 255]);
        assert_eq!(rgb.get_pixel(2, 0).0, [255, 255, 255]);
        // an opaque image is unchanged
        let plain = image::RgbImage::from_pixel(2, 2, image::Rgb([9, 8, 7]));
        assert_eq!(
            rgb_on_white(image::DynamicImage::ImageRgb8(plain.clone())),
            plain
        );
    }
}

#[cfg(test)]
mod damaged {
    use super::*;

    /// A GNU tar of samples, whole and incomplete: k0 (jpg, txt, cls), k1 (`PNG`, a dotless
    /// member, `TXT`), k2 (txt only), k3 (jpg, json), a long name (jpg only), `k4.`, k5 (webp,
    /// jpg, cls: no caption), s/k6 (jpg, txt), a folder, a symbolic link `k7.jpg`.
    fn tar_bytes() -> Vec<u8> {
        let mut b = ::tar::Builder::new(Vec::new());
        let long = format!("{}/long.jpg", "d".repeat(130));
        let entries: Vec<(String, Vec<u8>)> = vec![
            ("k0.jpg".into(), vec![1; 700]),
            ("k0.txt".into(), b"zero".to_vec()),
            ("k0.cls".into(), b" 3\n".to_vec()),
            ("k1.PNG".into(), vec![2; 10]),
            ("README".into(), b"x".to_vec()),
            ("k1.TXT".into(), b"one".to_vec()),
            ("k2.txt".into(), b"two".to_vec()),
            ("k3.jpg".into(), vec![3; 513]),
            ("k3.json".into(), b"{}".to_vec()),
            (long, vec![4; 5]),
            ("k4.".into(), vec![]),
            ("k5.webp".into(), vec![5; 20]),
            ("k5.jpg".into(), vec![6; 30]),
            ("k5.cls".into(), b"7".to_vec()),
            ("s/k6.jpg".into(), vec![7; 1024]),
            ("s/k6.txt".into(), b"six".to_vec()),
        ];
        for (name, data) in &entries {
            let mut h = ::tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, data.as_slice()).unwrap();
        }
        let mut h = ::tar::Header::new_gnu();
        h.set_entry_type(::tar::EntryType::Directory);
        h.set_size(0);
        b.append_data(&mut h, "adir/", &[][..]).unwrap();
        let mut h = ::tar::Header::new_gnu();
        h.set_entry_type(::tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "k7.jpg", "k0.jpg").unwrap();
        b.into_inner().unwrap()
    }

    type Read = (
        Vec<(String, usize, String, Option<i64>)>,
        Vec<(String, u64)>,
    );

    fn read(path: &Path) -> Read {
        let mut out = Vec::new();
        let mut drops = Drops::default();
        read_tar_samples(path, &mut drops, false, &BENCHMARK_IMAGES, |s| {
            out.push((s.key, s.image.len(), s.text, s.class));
            true
        });
        (out, drops.0.into_iter().collect())
    }

    fn s(
        key: &str,
        image: usize,
        text: &str,
        class: Option<i64>,
    ) -> (String, usize, String, Option<i64>) {
        (key.into(), image, text.into(), class)
    }

    fn d(v: &[(&str, u64)]) -> Vec<(String, u64)> {
        v.iter().map(|&(k, n)| (k.to_string(), n)).collect()
    }

    /// The drops and samples of whole, cut and corrupt tars: the figures the loader gave when it
    /// read tars with the `tar` crate (checked against it at every cut and at a damaged byte every
    /// 37 when it moved to `openwit-shard`).
    #[test]
    fn damaged_shards_count_their_drops() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.tar");
        let bytes = tar_bytes();
        let (k0, k1) = (s("k0", 700, "zero", Some(3)), s("k1", 10, "one", None));
        std::fs::write(&p, &bytes).unwrap();
        // k5 has a webp and then a jpg: clip_benchmark's order takes the webp (below),
        // OpenCLIP's training loader the jpg.
        let mut training = Vec::new();
        read_tar_samples(&p, &mut Drops::default(), false, &TRAINING_IMAGES, |s| {
            training.push((s.key, s.image.len()));
            true
        });
        assert!(training.contains(&("k5".into(), 30)), "{training:?}");
        assert_eq!(
            read(&p),
            (
                vec![
                    k0.clone(),
                    k1.clone(),
                    s("k5", 20, "", Some(7)),
                    s("s/k6", 1024, "six", None)
                ],
                d(&[("no_image", 2), ("no_text", 2), ("tar_not_a_file", 1)])
            )
        );
        // Cut 1 byte into k3.jpg's data: k3 has that byte for an image and no caption.
        std::fs::write(&p, &bytes[..8193]).unwrap();
        assert_eq!(
            read(&p),
            (
                vec![k0.clone(), k1.clone()],
                d(&[("no_image", 1), ("no_text", 1), ("shard_truncated", 1)])
            )
        );
        // Cut inside k2.txt's header: k1, read whole before it, still counts.
        std::fs::write(&p, &bytes[..6657]).unwrap();
        assert_eq!(
            read(&p),
            (vec![k0.clone(), k1], d(&[("shard_truncated", 1)]))
        );
        // Cut after the long name's extension header: no member follows it.
        std::fs::write(&p, &bytes[..11264]).unwrap();
        assert_eq!(
            read(&p).1,
            d(&[("no_image", 1), ("no_text", 1), ("shard_truncated", 1)])
        );
        // A damaged byte in k1.TXT's header (a bad checksum): k1 ends with its picture alone.
        let mut bad = bytes.clone();
        bad[5661] ^= 0x5a;
        std::fs::write(&p, &bad).unwrap();
        assert_eq!(
            read(&p),
            (vec![k0], d(&[("no_text", 1), ("shard_truncated", 1)]))
        );
        assert_eq!(
            read(&dir.path().join("none.tar")),
            (vec![], d(&[("shard_unreadable", 1)]))
        );
    }
}
