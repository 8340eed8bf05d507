//! The overlap analysis of the CLIP paper (section 5): which evaluation items the training data
//! holds, byte for byte (sha256 of the image as the set stores it against the training image's
//! sha256), nearly (the 64-bit perceptual hash within a Hamming distance) or by caption (a
//! training caption equal to one of the item's, ignoring case and whitespace), and every measure
//! again on the evaluation set without them.
//!
//! The training side is read from the shards' parquet metadata (`sha256` of the fetched bytes,
//! `phash` of the decoded picture, `caption`, rows with `status = success`), the way `download`
//! wrote them; a shard without its parquet is read from the tar (sha256 of the stored bytes,
//! perceptual hash of the decoded image, the `.txt` caption).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use openwit_shard::overlap::{EvalPrint, OverlapIndex};
use openwit_shard::{ShardReader, read_parquet_columns};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::data::held_out;
use crate::error::{ClipError, Result};
use crate::measures::{Retrieval, ZeroShot, retrieval_multi, zero_shot_named};

/// How many evaluation items overlap the training data, per kind, and how many training
/// samples are involved.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OverlapCounts {
    /// Evaluation items (images) looked up.
    pub items: u64,
    /// Items whose image bytes a training sample has (same sha256).
    pub sha256: u64,
    /// Items with a training image whose perceptual hash is within the distance (copies
    /// included).
    pub phash: u64,
    /// Items with a caption equal to a training caption (retrieval sets).
    pub caption: u64,
    /// Items in any of the three: left out of the "clean" measures.
    pub overlapping: u64,
    /// Training samples that duplicate an item's bytes, are near one, or share a caption.
    pub training_sha256: u64,
    pub training_phash: u64,
    pub training_caption: u64,
}

impl OverlapCounts {
    /// The share of items that overlap.
    pub fn fraction(&self) -> f64 {
        self.overlapping as f64 / self.items.max(1) as f64
    }
}

/// Which items of a list of evaluation prints the training data overlaps.
#[derive(Debug, Clone)]
pub struct Flags {
    pub counts: OverlapCounts,
    /// Per item: whether it overlaps (any kind).
    pub overlapping: Vec<bool>,
    /// Every overlap found: an item and a training sample, per kind, in the order the training
    /// samples were read.
    pub pairs: Vec<OverlapPair>,
}

/// How an evaluation item and a training sample overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverlapKind {
    /// The same image bytes.
    Sha256,
    /// Perceptual hashes within the distance.
    Phash,
    /// Equal captions (ignoring case and whitespace).
    Caption,
}

/// One overlap: evaluation item `item` (its index in its set) and a training sample.
#[derive(Debug, Clone, PartialEq)]
pub struct OverlapPair {
    pub item: u32,
    pub kind: OverlapKind,
    /// For [`OverlapKind::Phash`], the Hamming distance of the two hashes.
    pub distance: Option<u32>,
    /// The training sample: its shard (an index into [`Training::shards`]), key, URL (from
    /// the parquet) and caption.
    pub shard: usize,
    pub key: Option<String>,
    pub url: Option<String>,
    pub caption: Option<String>,
}

impl Flags {
    /// The indexes of the items that do not overlap.
    pub fn clean(&self) -> Vec<i64> {
        (0..self.overlapping.len() as i64)
            .filter(|&i| !self.overlapping[i as usize])
            .collect()
    }
}

/// One training sample's fingerprints (each when known), and where it is.
#[derive(Debug, Clone, Default)]
pub struct TrainPrint {
    pub sha256: Option<[u8; 32]>,
    pub phash: Option<u64>,
    pub caption: Option<String>,
    /// Its shard: an index into [`Training::shards`].
    pub shard: usize,
    pub key: Option<String>,
    /// The URL it was downloaded from (shards read from their parquet).
    pub url: Option<String>,
}

/// The training data the evaluation sets are compared with: shards, and when the run trained on
/// only part of them (`[train] held_out_percent`) that percentage, whose held-out samples are
/// not training data ([`crate::data::held_out`]).
#[derive(Debug, Clone, Default)]
pub struct Training {
    pub shards: Vec<PathBuf>,
    pub held_out_percent: u32,
}

/// The keys of a shard's held-out samples (decided by their image bytes, as training did).
fn held_out_keys(tar: &Path, percent: u32) -> Result<HashSet<String>> {
    let mut keys = HashSet::new();
    let reader = ShardReader::open(tar).map_err(|e| ClipError::Data(e.to_string()))?;
    for s in reader.samples() {
        let s = s.map_err(|e| ClipError::Data(e.to_string()))?;
        if s.image().is_some_and(|img| held_out(&img.data, percent)) {
            keys.insert(s.key.clone());
        }
    }
    Ok(keys)
}

/// Calls `f` with every training sample of `training` (see the module docs; held-out samples
/// are not training samples); returns how many.
pub fn for_each_training_sample(
    training: &Training,
    mut f: impl FnMut(&TrainPrint),
) -> Result<u64> {
    let mut n = 0u64;
    let percent = training.held_out_percent;
    for (shard, tar) in training.shards.iter().enumerate() {
        let pq = tar.with_extension("parquet");
        if pq.is_file() {
            let held = if percent > 0 {
                held_out_keys(tar, percent)?
            } else {
                HashSet::new()
            };
            let rows =
                read_parquet_columns(&pq, &["status", "caption", "sha256", "phash", "key", "url"])
                    .map_err(|e| ClipError::Data(e.to_string()))?;
            for mut r in rows {
                if r[0].as_deref() != Some("success")
                    || r[4].as_ref().is_some_and(|k| held.contains(k))
                {
                    continue;
                }
                let sha = r[2].as_deref().and_then(|h| {
                    let mut out = [0u8; 32];
                    hex_decode(h, &mut out).then_some(out)
                });
                let phash = r[3]
                    .as_deref()
                    .and_then(|h| u64::from_str_radix(h, 16).ok());
                f(&TrainPrint {
                    sha256: sha,
                    phash,
                    caption: r[1].take(),
                    shard,
                    key: r[4].take(),
                    url: r[5].take(),
                });
                n += 1;
            }
        } else {
            let reader = ShardReader::open(tar).map_err(|e| ClipError::Data(e.to_string()))?;
            for s in reader.samples() {
                let s = s.map_err(|e| ClipError::Data(e.to_string()))?;
                let Some(img) = s.image() else { continue };
                if held_out(&img.data, percent) {
                    continue;
                }
                f(&TrainPrint {
                    sha256: Some(openwit_shard::overlap::sha256(&img.data)),
                    phash: openwit_shard::overlap::phash_of_bytes(&img.data),
                    caption: s.text(),
                    shard,
                    key: Some(s.key.clone()),
                    url: None,
                });
                n += 1;
            }
        }
    }
    Ok(n)
}

fn hex_decode(h: &str, out: &mut [u8; 32]) -> bool {
    let b = h.as_bytes();
    if b.len() != 64 {
        return false;
    }
    for (i, o) in out.iter_mut().enumerate() {
        match u8::from_str_radix(&h[2 * i..2 * i + 2], 16) {
            Ok(v) => *o = v,
            Err(_) => return false,
        }
    }
    true
}

/// The overlaps of several evaluation sets (`sets[i]` = its items' prints) with the training
/// shards, in one pass over them. Returns the flags per set and the number of training samples.
pub fn find_overlaps(
    sets: &[&[EvalPrint]],
    training: &Training,
    distance: u32,
) -> Result<(Vec<Flags>, u64)> {
    let all: Vec<EvalPrint> = sets.iter().flat_map(|s| s.iter().cloned()).collect();
    // item -> (set, index in the set)
    let mut owner = Vec::with_capacity(all.len());
    for (si, s) in sets.iter().enumerate() {
        owner.extend((0..s.len()).map(|i| (si, i)));
    }
    let index = OverlapIndex::new(&all, distance);
    let mut flags: Vec<Flags> = sets
        .iter()
        .map(|s| Flags {
            counts: OverlapCounts {
                items: s.len() as u64,
                ..Default::default()
            },
            overlapping: vec![false; s.len()],
            pairs: Vec::new(),
        })
        .collect();
    // Per item and kind whether already counted: [sha256, phash, caption].
    let mut seen = vec![[false; 3]; all.len()];
    let has_captions = index.has_captions();
    let total = for_each_training_sample(training, |t| {
        let hits = index.lookup(
            t.sha256.as_ref(),
            t.phash,
            t.caption.as_deref().filter(|_| has_captions),
        );
        if hits.is_empty() {
            return;
        }
        // A training sample counts once per set and kind.
        let mut counted = vec![[false; 3]; sets.len()];
        for (kind, items) in [&hits.sha256, &hits.phash, &hits.caption]
            .into_iter()
            .enumerate()
        {
            for &item in items {
                let (si, i) = owner[item as usize];
                let fl = &mut flags[si];
                fl.overlapping[i] = true;
                fl.pairs.push(OverlapPair {
                    item: i as u32,
                    kind: [
                        OverlapKind::Sha256,
                        OverlapKind::Phash,
                        OverlapKind::Caption,
                    ][kind],
                    distance: match (kind, all[item as usize].phash, t.phash) {
                        (1, Some(a), Some(b)) => Some((a ^ b).count_ones()),
                        _ => None,
                    },
                    shard: t.shard,
                    key: t.key.clone(),
                    url: t.url.clone(),
                    caption: t.caption.clone(),
                });
                if !seen[item as usize][kind] {
                    seen[item as usize][kind] = true;
                    match kind {
                        0 => fl.counts.sha256 += 1,
                        1 => fl.counts.phash += 1,
                        _ => fl.counts.caption += 1,
                    }
                }
                if !counted[si][kind] {
                    counted[si][kind] = true;
                    match kind {
                        0 => fl.counts.training_sha256 += 1,
                        1 => fl.counts.training_phash += 1,
                        _ => fl.counts.training_caption += 1,
                    }
                }
            }
        }
    })?;
    for fl in &mut flags {
        fl.counts.overlapping = fl.overlapping.iter().filter(|&&o| o).count() as u64;
    }
    Ok((flags, total))
}

/// Zero-shot on the items `keep` (indexes) of image features `(N, D)`.
pub fn zero_shot_subset(
    images: &Tensor,
    labels: &[i64],
    class_emb: &Tensor,
    names: &[String],
    keep: &[i64],
) -> Option<ZeroShot> {
    if keep.is_empty() {
        return None;
    }
    let idx = Tensor::from_slice(keep).to_device(images.device());
    let sub = images.index_select(0, &idx);
    let l: Vec<i64> = keep.iter().map(|&i| labels[i as usize]).collect();
    Some(zero_shot_named(&sub, &l, class_emb, names))
}

/// Retrieval on the images `keep` (indexes) and their captions.
pub fn retrieval_subset(
    images: &Tensor,
    texts: &Tensor,
    text_image: &[i64],
    keep: &[i64],
) -> Option<Retrieval> {
    if keep.is_empty() {
        return None;
    }
    let n = images.size()[0] as usize;
    let mut new_id = vec![-1i64; n];
    for (j, &i) in keep.iter().enumerate() {
        new_id[i as usize] = j as i64;
    }
    let (mut tix, mut owner) = (Vec::new(), Vec::new());
    for (t, &i) in text_image.iter().enumerate() {
        let j = new_id[i as usize];
        if j >= 0 {
            tix.push(t as i64);
            owner.push(j);
        }
    }
    if tix.is_empty() {
        return None;
    }
    let dev = images.device();
    let sub_i = images.index_select(0, &Tensor::from_slice(keep).to_device(dev));
    let sub_t = texts.index_select(0, &Tensor::from_slice(&tix).to_device(dev));
    Some(retrieval_multi(&sub_i, &sub_t, &owner))
}

/// Rows `keep` of a CPU float tensor (for the probe's test features).
pub fn rows(x: &Tensor, keep: &[i64]) -> Tensor {
    x.index_select(0, &Tensor::from_slice(keep).to_device(x.device()))
        .to_kind(Kind::Float)
        .to_device(Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_reads_back() {
        let s = openwit_shard::overlap::sha256(b"abc");
        let hex: String = s.iter().map(|b| format!("{b:02x}")).collect();
        let mut out = [0u8; 32];
        assert!(hex_decode(&hex, &mut out));
        assert_eq!(out, s);
        assert!(!hex_decode("zz", &mut out));
    }
}
