//! Zero-shot classification (class names x prompt templates, the normalized text embeddings
//! averaged per class, as the CLIP paper) and image-text retrieval (R@1/5/10 both ways).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::bench::{EvalSet, class_folders};
use crate::data::{
    Loader, LoaderConfig, Position, RawSample, normalize_images, transform, transform_rgb,
};
use crate::error::{ClipError, IoAt, Result};
use crate::model::{Clip, Fwd, normalize};
use crate::overlap::OverlapCounts;
use crate::tokenizer::Tokenizer;

// The measures live below the set readers, the probe and the overlap analysis; evaluation
// results keep their names here.
pub use crate::measures::{
    ClassMetrics, Confusion, Labels, PerClass, Retrieval, ZeroShot, class_in_caption,
    classification_metrics, retrieval, retrieval_multi, zero_shot_accuracy, zero_shot_named,
};

/// A few of CLIP's ImageNet prompt templates (`{}` is the class name).
pub const DEFAULT_TEMPLATES: [&str; 6] = [
    "a photo of a {}.",
    "a bad photo of a {}.",
    "a photo of the large {}.",
    "a photo of the small {}.",
    "a cropped photo of a {}.",
    "itap of a {}.",
];

/// A prompt for class `name`: `{}` (OpenWIT) or `{c}` (clip_benchmark) replaced by it.
pub fn fill_template(template: &str, name: &str) -> String {
    template.replace("{c}", name).replace("{}", name)
}

/// Normalized class embeddings `(C, D)`: per class, the mean of the normalized embeddings of
/// its prompts, normalized again.
pub fn class_embeddings(
    model: &Clip,
    tok: &Tokenizer,
    classes: &[String],
    templates: &[String],
) -> Tensor {
    let ctx = model.config.text.context_length as usize;
    tch::no_grad(|| {
        let rows: Vec<Tensor> = classes
            .iter()
            .map(|c| {
                let texts: Vec<String> = templates.iter().map(|t| fill_template(t, c)).collect();
                let tokens = tok.tokenize_batch(&texts, ctx).to_device(model.device());
                let e = normalize(&model.encode_text(&tokens, Fwd::eval()));
                normalize(&e.mean_dim(0, true, Kind::Float))
            })
            .collect();
        Tensor::cat(&rows, 0)
    })
}

/// Encodes images (uint8 batches) into normalized features.
fn encode_images(model: &Clip, images: &Tensor) -> Tensor {
    tch::no_grad(|| {
        normalize(&model.encode_image(&normalize_images(images, model.device()), Fwd::eval()))
    })
}

/// Labelled images: `(image bytes, class index)` from an image folder read as torchvision's
/// `ImageFolder` reads it ([`class_folders`]: the sorted sub-folder names are the classes,
/// underscores read as spaces).
pub fn read_image_folder(root: &Path) -> Result<(Vec<String>, Vec<RawSample>)> {
    let mut names = Vec::new();
    let mut samples = Vec::new();
    for (ci, (name, files)) in class_folders(root)?.into_iter().enumerate() {
        names.push(name);
        for f in files {
            samples.push(RawSample {
                key: f.display().to_string(),
                image: std::fs::read(&f).at(&f)?,
                text: String::new(),
                class: Some(ci as i64),
            });
        }
    }
    if samples.is_empty() {
        return Err(ClipError::Config(format!(
            "{}: no class folders found; a labelled folder holds one sub-folder per class with .{} files",
            root.display(),
            crate::bench::IMAGE_EXTENSIONS.join("/.")
        )));
    }
    Ok((names, samples))
}

/// Zero-shot accuracy on in-memory labelled samples.
pub fn zero_shot_samples(
    model: &Clip,
    tok: &Tokenizer,
    classes: &[String],
    templates: &[String],
    samples: &[RawSample],
    batch_size: usize,
) -> Result<ZeroShot> {
    let emb = class_embeddings(model, tok, classes, templates);
    let size = model.image_size() as u32;
    let mut feats = Vec::new();
    let mut labels = Vec::new();
    for chunk in samples.chunks(batch_size.max(1)) {
        let mut pixels: Vec<u8> = Vec::new();
        let mut n = 0;
        for s in chunk {
            let Some(img) = transform(&s.image, size, None) else {
                continue;
            };
            let raw = img.into_raw();
            for c in 0..3 {
                pixels.extend(raw.iter().skip(c).step_by(3));
            }
            labels.push(s.class.unwrap_or(-1));
            n += 1;
        }
        if n == 0 {
            continue;
        }
        let images = Tensor::from_slice(&pixels).reshape([n, 3, size as i64, size as i64]);
        feats.push(encode_images(model, &images));
    }
    if feats.is_empty() {
        return Err(ClipError::Data("no decodable image to evaluate".into()));
    }
    Ok(zero_shot_accuracy(&Tensor::cat(&feats, 0), &labels, &emb))
}

fn eval_loader(
    model: &Clip,
    tok: Arc<Tokenizer>,
    shards: Vec<PathBuf>,
    batch_size: usize,
    workers: usize,
) -> Loader {
    Loader::start(
        LoaderConfig {
            shards,
            batch_size,
            image_size: model.image_size() as u32,
            context_length: model.config.text.context_length as usize,
            workers,
            prefetch: 2,
            shuffle_buffer: 0,
            seed: 0,
            train: false,
            pin_memory: model.device().is_cuda().then_some(model.device()),
            held_out_percent: 0,
        },
        tok,
        Position::default(),
    )
}

/// Zero-shot accuracy on shards whose samples carry a `.cls` class index.
pub fn zero_shot_shards(
    model: &Clip,
    tok: Arc<Tokenizer>,
    classes: &[String],
    templates: &[String],
    shards: Vec<PathBuf>,
    batch_size: usize,
    workers: usize,
) -> Result<ZeroShot> {
    zero_shot_shards_labelled(
        model,
        tok,
        classes,
        templates,
        shards,
        batch_size,
        workers,
        Labels::Cls,
    )
}

/// Zero-shot accuracy on shards, the classes taken from `.cls` entries or from the captions.
pub fn zero_shot_shards_labelled(
    model: &Clip,
    tok: Arc<Tokenizer>,
    classes: &[String],
    templates: &[String],
    shards: Vec<PathBuf>,
    batch_size: usize,
    workers: usize,
    source: Labels,
) -> Result<ZeroShot> {
    let emb = class_embeddings(model, &tok, classes, templates);
    let mut loader = eval_loader(model, tok, shards, batch_size, workers);
    let (mut feats, mut labels) = (Vec::new(), Vec::new());
    let mut left_out = 0u64;
    while let Some(b) = loader.next_batch() {
        if b.texts.is_empty() {
            continue;
        }
        let mut keep: Vec<i64> = Vec::with_capacity(b.texts.len());
        for (row, (c, text)) in b.classes.iter().zip(&b.texts).enumerate() {
            let label = match source {
                Labels::Cls => Some(c.ok_or_else(|| {
                    ClipError::Data("a sample has no `.cls` entry; zero-shot on shards needs a class index per sample (or `labels = \"caption\"`)".into())
                })?),
                Labels::Caption => class_in_caption(text, classes).map(|c| c as i64),
            };
            match label {
                Some(l) => {
                    labels.push(l);
                    keep.push(row as i64);
                }
                None => left_out += 1,
            }
        }
        if keep.is_empty() {
            continue;
        }
        let f = encode_images(model, &b.images);
        feats.push(if keep.len() == b.texts.len() {
            f
        } else {
            f.index_select(0, &Tensor::from_slice(&keep).to_device(f.device()))
        });
    }
    if feats.is_empty() {
        return Err(ClipError::Data(if left_out > 0 {
            format!("none of the {left_out} samples' captions names exactly one of the classes")
        } else {
            "the evaluation shards hold no usable sample".into()
        }));
    }
    let mut z = zero_shot_accuracy(&Tensor::cat(&feats, 0), &labels, &emb);
    z.left_out = left_out;
    Ok(z)
}

/// Image-text retrieval on held-out shards (each sample's image against its caption).
pub fn retrieval_shards(
    model: &Clip,
    tok: Arc<Tokenizer>,
    shards: Vec<PathBuf>,
    batch_size: usize,
    workers: usize,
) -> Result<Retrieval> {
    let mut loader = eval_loader(model, tok, shards, batch_size, workers);
    let (mut fi, mut ft) = (Vec::new(), Vec::new());
    while let Some(b) = loader.next_batch() {
        if b.texts.is_empty() {
            continue;
        }
        fi.push(encode_images(model, &b.images));
        let tokens = b.tokens.to_device(model.device());
        ft.push(tch::no_grad(|| {
            normalize(&model.encode_text(&tokens, Fwd::eval()))
        }));
    }
    if fi.is_empty() {
        return Err(ClipError::Data(
            "the retrieval shards hold no usable sample".into(),
        ));
    }
    Ok(retrieval(&Tensor::cat(&fi, 0), &Tensor::cat(&ft, 0)))
}

/// The normalized embeddings of an evaluation set.
#[derive(Debug)]
pub struct SetFeatures {
    /// `(N, D)` normalized image embeddings (float32, on the model's device).
    pub images: Tensor,
    /// Class of each image (-1 where the set has none).
    pub labels: Vec<i64>,
    /// `(M, D)` normalized caption embeddings, when asked for.
    pub texts: Option<Tensor>,
    /// The image of each caption.
    pub text_image: Vec<i64>,
    /// Samples left out: caption labels naming no class or several.
    pub left_out: u64,
    /// Images that did not decode (skipped, counted).
    pub undecodable: u64,
    /// The first of them (at most [`UNDECODABLE_NAMED`]): the sample and the decoder's reason.
    pub undecodable_named: Vec<String>,
    /// Per image, its fingerprints for the overlap analysis (empty unless asked for:
    /// [`encode_set_with`]).
    pub prints: Vec<openwit_shard::overlap::EvalPrint>,
    /// Beside each of [`SetFeatures::prints`], where its image comes from (the file, or
    /// `SHARD.tar:KEY`).
    pub names: Vec<String>,
}

/// How many undecodable images [`SetFeatures::undecodable_named`] names.
pub const UNDECODABLE_NAMED: usize = 5;

/// Why `bytes` gave no picture: the decoder's error, or its empty result.
fn why_undecodable(bytes: &[u8]) -> String {
    match crate::data::decode(bytes) {
        Err(e) => e,
        Ok(img) => format!("a {}x{} picture", img.width(), img.height()),
    }
}

/// Encodes a set: its images, and with `captions` its captions; with `classified` every image
/// gets its class (see [`EvalSet::for_each_batch`]).
pub fn encode_set(
    model: &Clip,
    tok: &Tokenizer,
    set: &EvalSet,
    classified: bool,
    captions: bool,
    batch_size: usize,
    workers: usize,
) -> Result<SetFeatures> {
    encode_set_with(
        model, tok, set, classified, captions, batch_size, workers, false,
    )
}

/// One batch of a set as the model takes it: the pictures that decoded, transformed to
/// `(n, 3, size, size)` uint8 planes, with their classes and captions.
#[derive(Debug)]
struct DecodedBatch {
    pixels: Vec<u8>,
    n: i64,
    labels: Vec<i64>,
    /// The captions, each with its picture's index in the batch.
    texts: Vec<(i64, String)>,
}

impl DecodedBatch {
    /// The memory it holds, about.
    fn bytes(&self) -> usize {
        self.pixels.len()
            + 8 * self.labels.len()
            + self
                .texts
                .iter()
                .map(|(_, t)| t.len() + std::mem::size_of::<(i64, String)>())
                .sum::<usize>()
    }
}

/// What reading a set counts beside its batches.
#[derive(Debug, Clone, Default)]
struct Tally {
    left_out: u64,
    undecodable: u64,
    undecodable_named: Vec<String>,
    prints: Vec<openwit_shard::overlap::EvalPrint>,
    names: Vec<String>,
}

/// A sample's picture for the model, as `(3, size, size)` planes (`None`: it does not
/// decode), and with `prints` its fingerprints for the overlap analysis: one decode for both.
fn read_picture(
    s: &crate::bench::EvalSample,
    size: u32,
    prints: bool,
) -> (Option<Vec<u8>>, Option<openwit_shard::overlap::EvalPrint>) {
    use image::metadata::Orientation;
    use openwit_shard::overlap::EvalPrint;
    // The orientation is only for the prints: the model sees the picture as PIL loads it.
    let decoded = if prints {
        openwit_shard::rgb::decode_unoriented(&s.image)
    } else {
        openwit_shard::rgb::decode(&s.image).map(|img| (img, Orientation::NoTransforms))
    };
    let Ok((img, orientation)) = decoded else {
        return (None, None);
    };
    let rgb = crate::data::rgb_on_white(img);
    let print =
        prints.then(|| EvalPrint::of_decoded(&s.image, &rgb, orientation, s.captions.clone()));
    let planes = transform_rgb(rgb, size, None).map(|img| {
        let raw = img.into_raw();
        let mut px = Vec::with_capacity(raw.len());
        for c in 0..3 {
            px.extend(raw.iter().skip(c).step_by(3));
        }
        px
    });
    (planes, print)
}

/// Decodes and transforms (OpenCLIP's eval transform: [`transform_rgb`]) a batch's pictures on
/// up to `workers` threads; what does not decode is counted in `tally` and left out.
fn decode_batch(
    batch: &[crate::bench::EvalSample],
    size: u32,
    captions: bool,
    prints: bool,
    workers: usize,
    tally: &mut Tally,
) -> DecodedBatch {
    let per = batch.len().div_ceil(workers.max(1)).max(1);
    let read: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = batch
            .chunks(per)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|s| read_picture(s, size, prints))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut out = DecodedBatch {
        pixels: Vec::with_capacity(batch.len() * 3 * (size * size) as usize),
        n: 0,
        labels: Vec::with_capacity(batch.len()),
        texts: Vec::new(),
    };
    for (s, (planes, print)) in batch.iter().zip(read) {
        let Some(planes) = planes else {
            tally.undecodable += 1;
            if tally.undecodable_named.len() < UNDECODABLE_NAMED {
                tally
                    .undecodable_named
                    .push(format!("{}: {}", s.name, why_undecodable(&s.image)));
            }
            continue;
        };
        if let Some(print) = print {
            tally.prints.push(print);
            tally.names.push(s.name.clone());
        }
        out.pixels.extend(planes);
        out.labels.push(s.class.unwrap_or(-1));
        if captions {
            out.texts
                .extend(s.captions.iter().map(|c| (out.n, c.clone())));
        }
        out.n += 1;
    }
    out.pixels.shrink_to_fit();
    out
}

/// A set's features as its batches are encoded.
#[derive(Default)]
struct Encoded {
    images: Vec<Tensor>,
    texts: Vec<Tensor>,
    labels: Vec<i64>,
    text_image: Vec<i64>,
    n_images: i64,
}

impl Encoded {
    fn push(&mut self, model: &Clip, tok: &Tokenizer, b: &DecodedBatch, batch_size: usize) {
        if b.n == 0 {
            return;
        }
        let size = model.image_size();
        let images = Tensor::from_slice(&b.pixels).reshape([b.n, 3, size, size]);
        self.images.push(encode_images(model, &images));
        self.labels.extend(&b.labels);
        let ctx = model.config.text.context_length as usize;
        for chunk in b.texts.chunks(batch_size.max(1)) {
            let texts: Vec<String> = chunk.iter().map(|(_, t)| t.clone()).collect();
            let tokens = tok.tokenize_batch(&texts, ctx).to_device(model.device());
            self.texts.push(tch::no_grad(|| {
                normalize(&model.encode_text(&tokens, Fwd::eval()))
            }));
        }
        let first = self.n_images;
        self.text_image
            .extend(b.texts.iter().map(|(i, _)| first + i));
        self.n_images += b.n;
    }

    fn finish(self, set: &str, tally: Tally) -> Result<SetFeatures> {
        if self.images.is_empty() {
            return Err(ClipError::Data(if tally.left_out > 0 {
                format!(
                    "{set}: none of the {} samples' captions names exactly one of the classes",
                    tally.left_out
                )
            } else {
                format!("{set}: no usable sample")
            }));
        }
        Ok(SetFeatures {
            images: Tensor::cat(&self.images, 0),
            labels: self.labels,
            texts: (!self.texts.is_empty()).then(|| Tensor::cat(&self.texts, 0)),
            text_image: self.text_image,
            left_out: tally.left_out,
            undecodable: tally.undecodable,
            undecodable_named: tally.undecodable_named,
            prints: tally.prints,
            names: tally.names,
        })
    }
}

/// [`encode_set`], with `prints` also each image's fingerprints ([`SetFeatures::prints`]) for
/// the overlap analysis.
#[allow(clippy::too_many_arguments)]
pub fn encode_set_with(
    model: &Clip,
    tok: &Tokenizer,
    set: &EvalSet,
    classified: bool,
    captions: bool,
    batch_size: usize,
    workers: usize,
    prints: bool,
) -> Result<SetFeatures> {
    let read = SetRead {
        classified,
        captions,
        prints,
    };
    encode_and_keep(model, tok, set, read, batch_size, workers, 0).map(|(f, _)| f)
}

/// What to read of a set's samples: with `classified` their classes (see
/// [`EvalSet::for_each_batch`]), with `captions` their captions, with `prints` their
/// fingerprints for the overlap analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetRead {
    pub classified: bool,
    pub captions: bool,
    pub prints: bool,
}

/// A set decoded and transformed once, to be encoded again and again: the held-out sets a
/// training run measures every `eval_every` steps, which would otherwise be read and decoded
/// anew each time.
#[derive(Debug)]
pub struct DecodedSet {
    name: String,
    batches: Vec<DecodedBatch>,
    tally: Tally,
    bytes: usize,
}

impl DecodedSet {
    /// The memory its pictures and captions take, about.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Its features under `model`: what [`encode_set_with`] gives on the set, without reading
    /// or decoding it again.
    pub fn encode(&self, model: &Clip, tok: &Tokenizer, batch_size: usize) -> Result<SetFeatures> {
        let mut enc = Encoded::default();
        for b in &self.batches {
            enc.push(model, tok, b, batch_size);
        }
        enc.finish(&self.name, self.tally.clone())
    }
}

/// [`encode_set_with`] (`read`: what it reads of the samples), also keeping what it decoded as
/// a [`DecodedSet`] while that takes at most `keep_bytes` (0: keep nothing; over it, what was
/// kept is let go and the set only encoded).
pub fn encode_and_keep(
    model: &Clip,
    tok: &Tokenizer,
    set: &EvalSet,
    read: SetRead,
    batch_size: usize,
    workers: usize,
    keep_bytes: usize,
) -> Result<(SetFeatures, Option<DecodedSet>)> {
    let size = model.image_size() as u32;
    let mut tally = Tally::default();
    let mut enc = Encoded::default();
    let mut kept = (keep_bytes > 0).then(Vec::new);
    let mut bytes = 0usize;
    tally.left_out = set.for_each_batch(batch_size, read.classified, |batch| {
        let b = decode_batch(
            &batch,
            size,
            read.captions,
            read.prints,
            workers,
            &mut tally,
        );
        enc.push(model, tok, &b, batch_size);
        if let Some(k) = kept.as_mut() {
            bytes += b.bytes();
            if bytes > keep_bytes {
                kept = None;
            } else {
                k.push(b);
            }
        }
        Ok(())
    })?;
    if tally.undecodable > 0 {
        tracing::warn!(
            set = %set.name,
            undecodable = tally.undecodable,
            first = %tally.undecodable_named.join("; "),
            "images that do not decode were skipped"
        );
    }
    let decoded = kept.map(|batches| DecodedSet {
        name: set.name.clone(),
        batches,
        tally: tally.clone(),
        bytes,
    });
    Ok((enc.finish(&set.name, tally)?, decoded))
}

/// The templates for a set: `configured` when given, else the set's own (clip_benchmark's
/// `zeroshot_classification_templates.txt`), else [`DEFAULT_TEMPLATES`].
pub fn templates_for(set: &EvalSet, configured: Option<&[String]>) -> Vec<String> {
    match (configured, &set.templates) {
        (Some(t), _) => t.to_vec(),
        (None, Some(t)) if !t.is_empty() => t.clone(),
        _ => DEFAULT_TEMPLATES.iter().map(|s| s.to_string()).collect(),
    }
}

/// Zero-shot classification of a set.
pub fn zero_shot_set(
    model: &Clip,
    tok: &Tokenizer,
    set: &EvalSet,
    templates: &[String],
    batch_size: usize,
    workers: usize,
) -> Result<ZeroShot> {
    can_classify(set)?;
    let emb = class_embeddings(model, tok, &set.classes, templates);
    let f = encode_set(model, tok, set, true, false, batch_size, workers)?;
    Ok(zero_shot_of(&f, &emb, set, templates.len()))
}

/// An error unless `set` names its classes, which zero-shot classification needs.
pub fn can_classify(set: &EvalSet) -> Result<()> {
    if set.classes.is_empty() {
        return Err(ClipError::Config(format!(
            "{}: zero-shot classification needs class names",
            set.name
        )));
    }
    Ok(())
}

/// Zero-shot classification of a set's features (read with their classes) against its class
/// embeddings `emb` (made with `templates` prompts per class).
pub fn zero_shot_of(f: &SetFeatures, emb: &Tensor, set: &EvalSet, templates: usize) -> ZeroShot {
    let mut z = zero_shot_named(&f.images, &f.labels, emb, &set.classes);
    z.left_out = f.left_out;
    z.templates = templates;
    z.set = set.name.clone();
    z
}

/// Image-text retrieval on a set with captions.
pub fn retrieval_set(
    model: &Clip,
    tok: &Tokenizer,
    set: &EvalSet,
    batch_size: usize,
    workers: usize,
) -> Result<Retrieval> {
    can_retrieve(set)?;
    let f = encode_set(model, tok, set, false, true, batch_size, workers)?;
    retrieval_of(&f, set)
}

/// An error unless `set` has captions, which retrieval needs.
pub fn can_retrieve(set: &EvalSet) -> Result<()> {
    if !set.has_captions() {
        return Err(ClipError::Config(format!(
            "{}: retrieval needs captions (OpenWIT shards, or a clip_benchmark set whose dataset_type.txt says retrieval)",
            set.name
        )));
    }
    Ok(())
}

/// Image-text retrieval on a set's features (read with their captions).
pub fn retrieval_of(f: &SetFeatures, set: &EvalSet) -> Result<Retrieval> {
    let texts = f
        .texts
        .as_ref()
        .ok_or_else(|| ClipError::Data(format!("{}: no captions", set.name)))?;
    let mut r = retrieval_multi(&f.images, texts, &f.text_image);
    r.set = set.name.clone();
    Ok(r)
}

/// Everything `openwit eval` measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EvalReport {
    pub model: String,
    pub weights: String,
    pub zero_shot: Option<ZeroShot>,
    pub retrieval: Option<Retrieval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear_probe: Option<crate::probe::LinearProbe>,
    /// The overlap analysis: how many evaluation items the training data holds, and every
    /// measure without them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<OverlapReport>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The overlap of the evaluation sets with the training data ([`crate::overlap`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OverlapReport {
    /// The training shards compared with.
    pub training: String,
    /// Their samples (successful downloads; without the held-out part of a run that kept one).
    pub training_samples: u64,
    /// The run's held-out percentage: those samples are not training data (0: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub held_out_percent: u32,
    /// Perceptual hashes within this many bits counted as near-duplicates.
    pub phash_distance: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zero_shot: Option<SetOverlap<ZeroShot>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<SetOverlap<Retrieval>>,
    /// The linear probe's test set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear_probe: Option<SetOverlap<ClassMetrics>>,
}

/// One set's overlap counts and its measure on the items that do not overlap (None when
/// every item overlaps).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SetOverlap<T> {
    #[serde(flatten)]
    pub counts: OverlapCounts,
    pub clean: Option<T>,
}

impl OverlapReport {
    /// The lines of [`EvalReport::table`].
    fn lines(&self, s: &mut String) {
        s.push_str(&format!(
            "overlap    with {} training samples ({}{}; phash within {} bits)\n",
            self.training_samples,
            self.training,
            if self.held_out_percent > 0 {
                format!(", less the {}% held out", self.held_out_percent)
            } else {
                String::new()
            },
            self.phash_distance
        ));
        let classes = |images: u64, m: (f64, f64, f64)| {
            format!(
                "{images} images  top-1 {:>6.2}%  top-5 {:>6.2}%  mean per-class recall {:>6.2}%",
                100.0 * m.0,
                100.0 * m.1,
                100.0 * m.2
            )
        };
        if let Some(z) = &self.zero_shot {
            let clean = z
                .clean
                .as_ref()
                .map(|c| classes(c.images, (c.top1, c.top5, c.mean_per_class_recall)));
            set_lines(s, "zero-shot", &z.counts, clean);
        }
        if let Some(r) = &self.retrieval {
            let clean = r.clean.as_ref().map(|c| {
                format!(
                    "{} pairs  image->text R@1/5/10 {:.2}/{:.2}/{:.2}%  text->image {:.2}/{:.2}/{:.2}%",
                    c.pairs,
                    100.0 * c.image_to_text[0],
                    100.0 * c.image_to_text[1],
                    100.0 * c.image_to_text[2],
                    100.0 * c.text_to_image[0],
                    100.0 * c.text_to_image[1],
                    100.0 * c.text_to_image[2]
                )
            });
            set_lines(s, "retrieval", &r.counts, clean);
        }
        if let Some(p) = &self.linear_probe {
            let clean = p.clean.as_ref().map(|c| {
                classes(
                    p.counts.items - p.counts.overlapping,
                    (c.top1, c.top5, c.mean_per_class_recall),
                )
            });
            set_lines(s, "linear probe", &p.counts, clean);
        }
    }
}

/// One set's lines of [`OverlapReport::lines`]: its overlap counts, then its measure without
/// the overlapping items (`clean`), or that there is none.
fn set_lines(s: &mut String, what: &str, c: &OverlapCounts, clean: Option<String>) {
    s.push_str(&format!(
        "  {what:<12} {} of {} items overlap ({:.2}%): sha256 {}, phash {}, caption {} (training samples: {}, {}, {})\n",
        c.overlapping,
        c.items,
        100.0 * c.fraction(),
        c.sha256,
        c.phash,
        c.caption,
        c.training_sha256,
        c.training_phash,
        c.training_caption
    ));
    match clean {
        Some(line) => s.push_str(&format!("             without overlaps: {line}\n")),
        None => s.push_str("             every item overlaps: no measure without overlaps\n"),
    }
}

impl EvalReport {
    /// A table for people.
    pub fn table(&self) -> String {
        let mut s = format!("model {} ({})\n", self.model, self.weights);
        if let Some(z) = &self.zero_shot {
            s.push_str(&format!(
                "zero-shot  {:>6} images  {:>4} classes  top-1 {:>6.2}%  top-5 {:>6.2}%  (chance {:.2}%)\n",
                z.images,
                z.classes,
                100.0 * z.top1,
                100.0 * z.top5,
                100.0 * z.chance
            ));
            if !z.per_class.is_empty() {
                s.push_str(&format!(
                    "           mean per-class recall {:>6.2}%  ({} prompts per class; per class in results.json)\n",
                    100.0 * z.mean_per_class_recall,
                    z.templates
                ));
            }
            if z.left_out > 0 {
                s.push_str(&format!(
                    "           ({} left out: their caption names no class or several)\n",
                    z.left_out
                ));
            }
        }
        if let Some(r) = &self.retrieval {
            s.push_str(&format!(
                "retrieval  {:>6} pairs   image->text R@1 {:>6.2}% R@5 {:>6.2}% R@10 {:>6.2}%\n",
                r.pairs,
                100.0 * r.image_to_text[0],
                100.0 * r.image_to_text[1],
                100.0 * r.image_to_text[2]
            ));
            s.push_str(&format!(
                "                          text->image R@1 {:>6.2}% R@5 {:>6.2}% R@10 {:>6.2}%  (chance R@5 {:.2}%)\n",
                100.0 * r.text_to_image[0],
                100.0 * r.text_to_image[1],
                100.0 * r.text_to_image[2],
                // a random ranking finds an image's captions (or a caption's image) in its top 5
                // about 5 times in `images`, whatever the captions per image
                100.0 * (5.0 / r.images.max(1) as f64).min(1.0)
            ));
        }
        if let Some(p) = &self.linear_probe {
            s.push_str(&format!(
                "linear probe {:>4} images {:>4} classes  top-1 {:>6.2}%  top-5 {:>6.2}%  (chance {:.2}%)  mean per-class recall {:>6.2}%\n",
                p.test_images,
                p.classes,
                100.0 * p.test.top1,
                100.0 * p.test.top5,
                100.0 / p.classes.max(1) as f64,
                100.0 * p.test.mean_per_class_recall
            ));
            s.push_str(&format!(
                "           C = {:.3e} chosen on {} validation images of {} ({} train)\n",
                p.c,
                p.validation_images,
                p.validation_images + p.train_images,
                p.train_images
            ));
        }
        if let Some(o) = &self.overlap {
            o.lines(&mut s);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn per_class_recall_and_what_the_misses_were_taken_for() {
        // 3 classes; rows are images, the highest logit is the prediction
        let logits = Tensor::from_slice2(&[
            [9.0f32, 1.0, 0.0], // 0 -> 0
            [0.0, 9.0, 1.0],    // 0 -> 1
            [0.0, 1.0, 9.0],    // 0 -> 2
            [1.0, 0.0, 9.0],    // 0 -> 2
            [0.0, 9.0, 1.0],    // 1 -> 1
            [9.0, 0.0, 1.0],    // 2 -> 0
        ]);
        let names: Vec<String> = ["cat", "dog", "bird"].map(String::from).to_vec();
        let m = classification_metrics(&logits, &[0, 0, 0, 0, 1, 2], &names);
        assert!((m.top1 - 2.0 / 6.0).abs() < 1e-12);
        let cat = &m.per_class[0];
        assert_eq!((cat.images, cat.top1), (4, 0.25));
        assert_eq!(
            cat.confused_with,
            [
                Confusion {
                    class: "bird".into(),
                    images: 2
                },
                Confusion {
                    class: "dog".into(),
                    images: 1
                },
            ]
        );
        assert!(m.per_class[1].confused_with.is_empty());
        assert_eq!(m.per_class[2].confused_with[0].class, "cat");
        assert!((m.mean_per_class_recall - (0.25 + 1.0 + 0.0) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn accuracy_and_recall_on_known_features() {
        let eye = Tensor::eye(4, (Kind::Float, Device::Cpu));
        let z = zero_shot_accuracy(&eye, &[0, 1, 3, 3], &eye);
        assert!((z.top1 - 0.75).abs() < 1e-9);
        assert!((z.top5 - 1.0).abs() < 1e-9);
        let r = retrieval(&eye, &eye);
        assert_eq!(r.image_to_text, [1.0, 1.0, 1.0]);
        let rev = eye.flip([0]);
        let r = retrieval(&eye, &rev);
        assert_eq!(r.image_to_text[0], 0.0);
    }

    #[test]
    fn the_class_a_caption_names() {
        let classes: Vec<String> = ["car", "red car", "cat", "cup of coffee", "Apple pie"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let c = |t: &str| class_in_caption(t, &classes);
        assert_eq!(c("a photo of a cat in the garden"), Some(2));
        assert_eq!(c("A big RED CAR on the street"), Some(1)); // not "car": inside "red car"
        assert_eq!(c("my car, on a table"), Some(0));
        assert_eq!(c("a small cup of coffee at the beach"), Some(3));
        assert_eq!(c("apple pie."), Some(4));
        assert_eq!(c("a category of cats"), None); // whole words only
        assert_eq!(c("a cat next to a car"), None); // two classes: ambiguous
        assert_eq!(c("a cat and another cat"), Some(2));
        assert_eq!(c("a dog"), None);
    }
}
