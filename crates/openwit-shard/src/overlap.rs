//! Image and caption fingerprints shared by the stages that compare pictures and texts with an
//! evaluation set: `download` (near-duplicates; decontamination: `exclude_eval`), `curate`
//! (decontamination by caption) and `eval` (the overlap analysis of the CLIP paper).
//!
//! - [`phash`]: imagehash's 64-bit DCT perceptual hash, the one `download` writes to the
//!   parquet's `phash` column; [`phash_of_bytes`] decodes an image file and hashes it as
//!   `download` hashes what it stores of it (transparency on white, EXIF orientation applied);
//! - [`normalize_text`]: captions compared ignoring case and runs of whitespace;
//! - [`NearIndex`]: hashes within a Hamming distance, found through exact band lookups;
//! - [`EvalPrint`] / [`OverlapIndex`]: an evaluation set's fingerprints (sha256 of the bytes as
//!   stored, perceptual hash, captions) and the lookup of a training sample against them;
//! - [`read_eval_paths`]: the fingerprints of evaluation sets given as paths (image files,
//!   folders of them at any depth, webdataset tars: ImageFolder, clip_benchmark, OpenWIT shards).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use fast_image_resize as fr;
use image::RgbImage;
use image::metadata::Orientation;
use sha2::{Digest, Sha256};

use crate::{Result, ShardError, ShardReader};

thread_local! {
    /// One resizer per thread keeps its buffers between images.
    static RESIZER: std::cell::RefCell<fr::Resizer> = std::cell::RefCell::new(fr::Resizer::new());
}

/// imagehash's `phash`: 32x32 grayscale, 2-D DCT-II, the 8x8 lowest frequencies compared with
/// their median; bit 63 is the top-left coefficient. `process` hashes the whole picture at the
/// smaller of its decoded and resized sizes (before any border or crop).
pub fn phash(img: &RgbImage) -> u64 {
    let (w, h) = img.dimensions();
    // Resample the colour image to 32x32 first, then take luma of 1,024 pixels: the same as
    // luma-then-resample up to rounding (both are linear), without a full-size grayscale copy.
    let src = fr::images::TypedImageRef::<fr::pixels::U8x3>::from_buffer(w, h, img.as_raw())
        .expect("sizes match");
    let mut out = [0u8; 32 * 32 * 3];
    let mut dst = fr::images::TypedImage::<fr::pixels::U8x3>::from_buffer(32, 32, &mut out)
        .expect("sizes match");
    let alg =
        fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Lanczos3));
    RESIZER.with(|r| {
        r.borrow_mut()
            .resize_typed(&src, &mut dst, &alg)
            .expect("resize to 32x32")
    });
    let px: Vec<f64> = out
        .chunks_exact(3)
        .map(|p| ((p[0] as u32 * 299 + p[1] as u32 * 587 + p[2] as u32 * 114 + 500) / 1000) as f64)
        .collect();
    // DCT-II (unnormalised, as scipy.fftpack.dct type 2) along columns then rows; only the
    // first 8 outputs of each are needed.
    static COS: std::sync::OnceLock<[[f64; 32]; 8]> = std::sync::OnceLock::new();
    let cos = COS.get_or_init(|| {
        let mut cos = [[0f64; 32]; 8];
        for (k, row) in cos.iter_mut().enumerate() {
            for (n, c) in row.iter_mut().enumerate() {
                *c = (std::f64::consts::PI * k as f64 * (2 * n + 1) as f64 / 64.0).cos();
            }
        }
        cos
    });
    // along axis 0 (down each column): tmp[k][x] for k < 8
    let mut tmp = [[0f64; 32]; 8];
    for k in 0..8 {
        for x in 0..32 {
            let mut s = 0.0;
            for y in 0..32 {
                s += px[y * 32 + x] * cos[k][y];
            }
            tmp[k][x] = 2.0 * s;
        }
    }
    let mut low = [0f64; 64];
    for k in 0..8 {
        for l in 0..8 {
            let mut s = 0.0;
            for x in 0..32 {
                s += tmp[k][x] * cos[l][x];
            }
            low[k * 8 + l] = 2.0 * s;
        }
    }
    let mut sorted = low;
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let median = (sorted[31] + sorted[32]) / 2.0;
    low.iter()
        .fold(0u64, |acc, &v| (acc << 1) | u64::from(v > median))
}

/// The perceptual hash of an image file's bytes as `download` hashes the picture it stores of
/// them: decoded as [`crate::rgb::decode`] reads them (JPEG, PNG, WebP, GIF, BMP, TIFF, up to
/// PIL's pixel limit), transparency composited on white ([`crate::rgb::rgb_on_white`]), the EXIF
/// orientation applied, then [`phash`]. `None` when the bytes do not decode.
pub fn phash_of_bytes(bytes: &[u8]) -> Option<u64> {
    let (img, orientation) = crate::rgb::decode_unoriented(bytes).ok()?;
    Some(phash_oriented(&crate::rgb::rgb_on_white(img), orientation))
}

/// [`phash`] of `rgb` once `orientation` is applied to it (a copy only when it moves pixels).
pub fn phash_oriented(rgb: &RgbImage, orientation: Orientation) -> u64 {
    if orientation == Orientation::NoTransforms {
        return phash(rgb);
    }
    let mut img = image::DynamicImage::ImageRgb8(rgb.clone());
    img.apply_orientation(orientation);
    phash(&img.into_rgb8())
}

/// The sha256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// A caption as compared for overlap: lower case (Unicode), whitespace runs as one space,
/// trimmed.
pub fn normalize_text(s: &str) -> String {
    s.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// 64-bit hashes with ids (in the order added), and every id within a Hamming distance `max` of
/// a query. The hash is cut into `max + 1` bands: two hashes within `max` bits agree exactly on
/// at least one band (pigeonhole), so only the ids sharing a band are compared. Past distance
/// 15 (bands of 4 bits) every hash is compared.
#[derive(Debug, Clone)]
pub struct NearIndex {
    max: u32,
    hashes: Vec<u64>,
    /// (first bit, width) of each band.
    bands: Vec<(u32, u32)>,
    lookup: Vec<HashMap<u64, Vec<u32>>>,
}

impl NearIndex {
    pub fn new(max: u32) -> Self {
        let n = if max <= 15 { max + 1 } else { 0 };
        let mut bands = Vec::new();
        let mut at = 0;
        for b in 0..n {
            let w = (64 - at) / (n - b);
            bands.push((at, w));
            at += w;
        }
        NearIndex {
            max,
            hashes: Vec::new(),
            lookup: vec![HashMap::new(); bands.len()],
            bands,
        }
    }

    fn band(h: u64, (at, w): (u32, u32)) -> u64 {
        let mask = if w >= 64 { u64::MAX } else { (1u64 << w) - 1 };
        (h >> at) & mask
    }

    /// Adds `h`; its id is the number of hashes added before it.
    pub fn add(&mut self, h: u64) -> u32 {
        let id = self.hashes.len() as u32;
        self.hashes.push(h);
        for (b, &band) in self.bands.iter().enumerate() {
            self.lookup[b]
                .entry(Self::band(h, band))
                .or_default()
                .push(id);
        }
        id
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The ids of the hashes within `max` bits of `h`, ascending, each once.
    pub fn within(&self, h: u64) -> Vec<u32> {
        let close = |id: &u32| (self.hashes[*id as usize] ^ h).count_ones() <= self.max;
        let mut out: Vec<u32> = if self.bands.is_empty() {
            (0..self.hashes.len() as u32).filter(close).collect()
        } else {
            self.bands
                .iter()
                .enumerate()
                .filter_map(|(b, &band)| self.lookup[b].get(&Self::band(h, band)))
                .flatten()
                .copied()
                .filter(close)
                .collect()
        };
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// One evaluation item's fingerprints.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalPrint {
    /// sha256 of the image bytes as the set stores them.
    pub sha256: [u8; 32],
    /// [`phash_of_bytes`] (None: the image does not decode).
    pub phash: Option<u64>,
    /// Its captions (retrieval sets), as stored.
    pub captions: Vec<String>,
}

impl EvalPrint {
    /// The fingerprints of an image's bytes and its captions.
    pub fn of(image: &[u8], captions: Vec<String>) -> Self {
        EvalPrint {
            sha256: sha256(image),
            phash: phash_of_bytes(image),
            captions,
        }
    }

    /// [`EvalPrint::of`] for an image already decoded: `rgb` is its picture on white
    /// ([`crate::rgb::rgb_on_white`]) and `orientation` the one its file declares
    /// ([`crate::rgb::decode_unoriented`]), so one decode serves the fingerprints and whatever
    /// else reads the picture.
    pub fn of_decoded(
        image: &[u8],
        rgb: &RgbImage,
        orientation: Orientation,
        captions: Vec<String>,
    ) -> Self {
        EvalPrint {
            sha256: sha256(image),
            phash: Some(phash_oriented(rgb, orientation)),
            captions,
        }
    }
}

/// Which evaluation items a training sample overlaps, per kind (ascending item indexes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hits {
    /// Same image bytes.
    pub sha256: Vec<u32>,
    /// Perceptual hash within the distance (byte-identical copies included).
    pub phash: Vec<u32>,
    /// A caption equal to one of the item's (normalised: [`normalize_text`]).
    pub caption: Vec<u32>,
}

impl Hits {
    pub fn is_empty(&self) -> bool {
        self.sha256.is_empty() && self.phash.is_empty() && self.caption.is_empty()
    }
}

/// An evaluation set's fingerprints, for looking up training samples.
#[derive(Debug, Clone)]
pub struct OverlapIndex {
    items: usize,
    sha: HashMap<[u8; 32], Vec<u32>>,
    near: NearIndex,
    /// The near index's id -> item.
    near_item: Vec<u32>,
    captions: HashMap<String, Vec<u32>>,
}

impl OverlapIndex {
    /// Indexes `prints` (item i = `prints[i]`); perceptual hashes match within `distance` bits.
    pub fn new(prints: &[EvalPrint], distance: u32) -> Self {
        let mut ix = OverlapIndex {
            items: prints.len(),
            sha: HashMap::new(),
            near: NearIndex::new(distance),
            near_item: Vec::new(),
            captions: HashMap::new(),
        };
        for (i, p) in prints.iter().enumerate() {
            let i = i as u32;
            ix.sha.entry(p.sha256).or_default().push(i);
            if let Some(h) = p.phash {
                ix.near.add(h);
                ix.near_item.push(i);
            }
            for c in &p.captions {
                let n = normalize_text(c);
                if !n.is_empty() {
                    let v = ix.captions.entry(n).or_default();
                    if v.last() != Some(&i) {
                        v.push(i);
                    }
                }
            }
        }
        ix
    }

    /// The number of evaluation items.
    pub fn items(&self) -> usize {
        self.items
    }

    /// Whether it has captions to compare.
    pub fn has_captions(&self) -> bool {
        !self.captions.is_empty()
    }

    /// The items with these image bytes' sha256.
    pub fn by_sha256(&self, sha: &[u8; 32]) -> &[u32] {
        self.sha.get(sha).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The items whose perceptual hash is within the distance of `h`.
    pub fn by_phash(&self, h: u64) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .near
            .within(h)
            .into_iter()
            .map(|id| self.near_item[id as usize])
            .collect();
        v.sort_unstable();
        v
    }

    /// The items with a caption equal to `caption` (normalised).
    pub fn by_caption(&self, caption: &str) -> &[u32] {
        if self.captions.is_empty() {
            return &[];
        }
        self.captions
            .get(&normalize_text(caption))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// A training sample's overlaps: its image's sha256 and perceptual hash and its caption,
    /// each when known.
    pub fn lookup(
        &self,
        sha: Option<&[u8; 32]>,
        phash: Option<u64>,
        caption: Option<&str>,
    ) -> Hits {
        Hits {
            sha256: sha.map(|s| self.by_sha256(s).to_vec()).unwrap_or_default(),
            phash: phash.map(|h| self.by_phash(h)).unwrap_or_default(),
            caption: caption
                .map(|c| self.by_caption(c).to_vec())
                .unwrap_or_default(),
        }
    }
}

/// Image files by extension (the eval sets' formats).
const IMAGE_EXTS: [&str; 7] = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tiff"];

fn is_image(p: &Path) -> bool {
    p.extension()
        .is_some_and(|x| IMAGE_EXTS.contains(&x.to_string_lossy().to_ascii_lowercase().as_str()))
}

/// The files under `path` (itself when a file), sorted, at any depth.
fn walk(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| ShardError::io(path, e))?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| ShardError::io(path, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for e in entries {
        walk(&e, out)?;
    }
    Ok(())
}

/// The fingerprints of the evaluation sets at `paths`: every image file under them (an
/// ImageFolder, loose pictures) and every sample of every `.tar` under them (a clip_benchmark
/// set: all its splits; OpenWIT shards), its `.txt` read as captions one a line. A missing path
/// is an error; a picture that does not decode keeps its sha256 only.
pub fn read_eval_paths(paths: &[PathBuf]) -> Result<Vec<EvalPrint>> {
    read_eval_paths_with(paths, true)
}

/// [`read_eval_paths`]; without `decode`, no perceptual hashes (the captions and sha256 only,
/// without decoding a picture).
pub fn read_eval_paths_with(paths: &[PathBuf], decode: bool) -> Result<Vec<EvalPrint>> {
    let print = |bytes: &[u8], captions: Vec<String>| {
        if decode {
            EvalPrint::of(bytes, captions)
        } else {
            EvalPrint {
                sha256: sha256(bytes),
                phash: None,
                captions,
            }
        }
    };
    let mut files = Vec::new();
    for p in paths {
        walk(p, &mut files)?;
    }
    let mut out = Vec::new();
    for f in files {
        if is_image(&f) {
            let bytes = std::fs::read(&f).map_err(|e| ShardError::io(&f, e))?;
            out.push(print(&bytes, Vec::new()));
        } else if f.extension().is_some_and(|x| x == "tar") {
            for s in ShardReader::open(&f)?.samples() {
                let s = s?;
                let Some(img) = s.image() else { continue };
                let captions = s
                    .text()
                    .map(|t| {
                        t.lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(print(&img.data, captions));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_index_finds_every_hash_within_the_distance() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for max in [0u32, 3, 4, 7, 20] {
            let mut ix = NearIndex::new(max);
            let base: Vec<u64> = (0..200).map(|_| next()).collect();
            for &h in &base {
                ix.add(h);
            }
            for _ in 0..200 {
                let i = (next() % 200) as usize;
                let mut q = base[i];
                let flips = next() % (max as u64 + 3);
                for _ in 0..flips {
                    q ^= 1 << (next() % 64);
                }
                let want: Vec<u32> = (0..200u32)
                    .filter(|&j| (base[j as usize] ^ q).count_ones() <= max)
                    .collect();
                assert_eq!(ix.within(q), want, "max {max}");
            }
        }
    }

    #[test]
    fn captions_compare_without_case_and_spacing() {
        assert_eq!(normalize_text("  A Red\tCar \n"), "a red car");
        let p = EvalPrint {
            sha256: [1; 32],
            phash: None,
            captions: vec!["A red car".into(), "two dogs".into()],
        };
        let ix = OverlapIndex::new(&[p], 4);
        assert_eq!(ix.by_caption("a  RED car"), &[0]);
        assert!(ix.by_caption("a red car.").is_empty());
        assert_eq!(ix.by_sha256(&[1; 32]), &[0]);
        assert!(ix.lookup(Some(&[2; 32]), Some(7), Some("x")).is_empty());
    }
}
