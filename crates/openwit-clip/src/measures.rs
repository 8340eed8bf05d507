//! The measures of an evaluation, on features already computed: zero-shot classification
//! ([`zero_shot_named`], [`classification_metrics`]: top-1/5, mean per-class recall, per-class
//! results with their confusions) and image-text retrieval ([`retrieval_multi`]: R@1/5/10 both
//! ways), and how a shard sample's class is read ([`Labels`], [`class_in_caption`]). Below the
//! set readers ([`crate::bench`]), the linear probe ([`crate::probe`]), the overlap analysis
//! ([`crate::overlap`]) and the evaluation that runs the model ([`crate::eval`]), which all use them.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Top-1 and top-5 accuracy, mean per-class recall and per-class accuracy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ZeroShot {
    pub images: u64,
    pub classes: usize,
    pub top1: f64,
    /// Top-5 (with fewer than 5 classes: top-`classes`, so 1).
    pub top5: f64,
    /// Chance level (1 / classes).
    pub chance: f64,
    /// Samples left out because their caption named no class or several
    /// ([`Labels::Caption`]).
    #[serde(default)]
    pub left_out: u64,
    /// The mean over classes with images of each one's top-1 recall (balanced accuracy).
    #[serde(default)]
    pub mean_per_class_recall: f64,
    /// Prompt templates per class (averaged into its embedding).
    #[serde(default)]
    pub templates: usize,
    /// Where the images came from.
    #[serde(default)]
    pub set: String,
    #[serde(default)]
    pub per_class: Vec<PerClass>,
}

/// One class's result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PerClass {
    pub class: String,
    pub images: u64,
    /// Top-1 accuracy on its images (its recall).
    pub top1: f64,
    /// The classes its missed images were taken for, most frequent first (at most 3): the
    /// confusion overview.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub confused_with: Vec<Confusion>,
}

/// How many images of a class were taken for `class`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Confusion {
    pub class: String,
    pub images: u64,
}

/// Classification measures of logits against labels.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ClassMetrics {
    pub top1: f64,
    pub top5: f64,
    pub mean_per_class_recall: f64,
    pub per_class: Vec<PerClass>,
}

/// Top-1, top-5 (top-`C` with fewer classes), mean per-class recall over the classes that have
/// images (scikit-learn's `balanced_accuracy_score`, what clip_benchmark reports) and per-class
/// top-1, of logits `(N, C)`.
pub fn classification_metrics(logits: &Tensor, labels: &[i64], names: &[String]) -> ClassMetrics {
    let c = logits.size()[1];
    let k = 5.min(c);
    let (_, top) = logits.topk(k, -1, true, true);
    let top: Vec<i64> = Vec::try_from(top.to_device(Device::Cpu).reshape([-1])).unwrap_or_default();
    let n = labels.len();
    let (mut hit1, mut hit5) = (0u64, 0u64);
    let mut per = vec![(0u64, 0u64); c as usize];
    // (true class, predicted class) -> images, for the misses
    let mut missed: std::collections::BTreeMap<(i64, i64), u64> = Default::default();
    for (i, &l) in labels.iter().enumerate() {
        let row = &top[i * k as usize..(i + 1) * k as usize];
        let ok1 = row[0] == l;
        hit1 += ok1 as u64;
        hit5 += row.contains(&l) as u64;
        if let Some(p) = per.get_mut(l as usize) {
            p.0 += 1;
            p.1 += ok1 as u64;
        }
        if !ok1 {
            *missed.entry((l, row[0])).or_default() += 1;
        }
    }
    let name = |i: i64| {
        names
            .get(i as usize)
            .cloned()
            .unwrap_or_else(|| i.to_string())
    };
    let per_class: Vec<PerClass> = per
        .iter()
        .enumerate()
        .map(|(i, &(imgs, ok))| {
            let mut confused: Vec<(u64, i64)> = missed
                .range((i as i64, i64::MIN)..=(i as i64, i64::MAX))
                .map(|(&(_, p), &n)| (n, p))
                .collect();
            // most frequent first, then by class index
            confused.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            PerClass {
                class: name(i as i64),
                images: imgs,
                top1: if imgs > 0 {
                    ok as f64 / imgs as f64
                } else {
                    0.0
                },
                confused_with: confused
                    .into_iter()
                    .take(3)
                    .map(|(n, p)| Confusion {
                        class: name(p),
                        images: n,
                    })
                    .collect(),
            }
        })
        .collect();
    let with_images: Vec<&PerClass> = per_class.iter().filter(|p| p.images > 0).collect();
    let nd = n.max(1) as f64;
    ClassMetrics {
        top1: hit1 as f64 / nd,
        top5: hit5 as f64 / nd,
        mean_per_class_recall: with_images.iter().map(|p| p.top1).sum::<f64>()
            / with_images.len().max(1) as f64,
        per_class,
    }
}

/// Where the class of a zero-shot sample in shards comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Labels {
    /// The sample's `.cls` entry (a class index).
    #[default]
    Cls,
    /// The one class its caption names ([`class_in_caption`]); captions naming none or several
    /// are left out (counted).
    Caption,
}

impl Labels {
    pub fn is_cls(&self) -> bool {
        *self == Labels::Cls
    }
}

/// The class whose name `caption` contains, as whole words and ignoring case, when exactly one
/// does. A name found only inside the match of a longer name does not count ("car" in "a red
/// car" when "red car" is a class too); two classes named side by side make it ambiguous (None).
pub fn class_in_caption(caption: &str, classes: &[String]) -> Option<usize> {
    let text = caption.to_lowercase();
    let word_char_before = |i: usize| {
        text[..i]
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric)
    };
    let word_char_after = |i: usize| text[i..].chars().next().is_some_and(char::is_alphanumeric);
    // (start, end, class) of every whole-word occurrence.
    let mut hits: Vec<(usize, usize, usize)> = Vec::new();
    for (ci, class) in classes.iter().enumerate() {
        let name = class.trim().to_lowercase();
        if name.is_empty() {
            continue;
        }
        for (start, _) in text.match_indices(&name) {
            let end = start + name.len();
            if !word_char_before(start) && !word_char_after(end) {
                hits.push((start, end, ci));
            }
        }
    }
    // Leave out occurrences inside a longer occurrence of another class.
    let outer: Vec<usize> = hits
        .iter()
        .filter(|&&(s, e, c)| {
            !hits
                .iter()
                .any(|&(s2, e2, c2)| c2 != c && s2 <= s && e <= e2 && e2 - s2 > e - s)
        })
        .map(|&(_, _, c)| c)
        .collect();
    let first = *outer.first()?;
    outer.iter().all(|&c| c == first).then_some(first)
}

/// Recall at 1, 5, 10 for image->text and text->image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Retrieval {
    /// (image, caption) pairs: the captions.
    pub pairs: u64,
    pub image_to_text: [f64; 3],
    pub text_to_image: [f64; 3],
    /// Images (fewer than `pairs` when images have several captions).
    #[serde(default)]
    pub images: u64,
    #[serde(default)]
    pub set: String,
}

/// Zero-shot accuracy of normalized image features `(N, D)` with labels against `class_emb`.
pub fn zero_shot_accuracy(image_features: &Tensor, labels: &[i64], class_emb: &Tensor) -> ZeroShot {
    zero_shot_named(image_features, labels, class_emb, &[])
}

/// [`zero_shot_accuracy`] with the class names for the per-class results.
pub fn zero_shot_named(
    image_features: &Tensor,
    labels: &[i64],
    class_emb: &Tensor,
    names: &[String],
) -> ZeroShot {
    let c = class_emb.size()[0];
    let logits = image_features.matmul(&class_emb.tr());
    let m = classification_metrics(&logits, labels, names);
    ZeroShot {
        images: labels.len() as u64,
        classes: c as usize,
        top1: m.top1,
        top5: m.top5,
        chance: 1.0 / c as f64,
        left_out: 0,
        mean_per_class_recall: m.mean_per_class_recall,
        templates: 0,
        set: String::new(),
        per_class: m.per_class,
    }
}

/// R@1/5/10 with pair i = (image i, text i).
pub fn retrieval(image_features: &Tensor, text_features: &Tensor) -> Retrieval {
    let n = image_features.size()[0];
    let owner: Vec<i64> = (0..n).collect();
    retrieval_multi(image_features, text_features, &owner)
}

/// R@1/5/10 where caption j belongs to image `text_image[j]` (images may have several): a text
/// finds its image among the top k images; an image finds any of its captions among the top k
/// texts (the CLIP paper's and clip_benchmark's measure). A score tied with the match does not
/// push it down.
pub fn retrieval_multi(
    image_features: &Tensor,
    text_features: &Tensor,
    text_image: &[i64],
) -> Retrieval {
    let n = image_features.size()[0];
    let m = text_features.size()[0];
    let device = image_features.device();
    let sims = image_features.matmul(&text_features.tr()); // (N, M)
    let owner = Tensor::from_slice(text_image).to_device(device);
    let pos = owner
        .unsqueeze(0)
        .eq_tensor(&Tensor::arange(n, (Kind::Int64, device)).unsqueeze(1)); // (N, M)
    let count_above = |s: &Tensor, best: &Tensor| -> Vec<i64> {
        let rank =
            s.gt_tensor(&best.unsqueeze(1))
                .sum_dim_intlist([1i64].as_slice(), false, Kind::Int64);
        Vec::try_from(rank.to_device(Device::Cpu)).unwrap_or_default()
    };
    // Text -> image: the score of each text's own image.
    let st = sims.tr(); // (M, N)
    let own = st.gather(1, &owner.unsqueeze(1), false).squeeze_dim(1);
    let t_rank = count_above(&st, &own);
    // Image -> text: its best caption (an image without captions never finds one).
    let masked = sims.masked_fill(&pos.logical_not(), f64::NEG_INFINITY);
    let best = masked.amax([1i64].as_slice(), false);
    let has = pos.any_dim(1, false);
    let has: Vec<bool> = Vec::try_from(has.to_device(Device::Cpu)).unwrap_or_default();
    let i_rank = count_above(&sims, &best);
    let recall = |r: &[i64], ok: &dyn Fn(usize) -> bool, total: i64| -> [f64; 3] {
        [1, 5, 10].map(|k| {
            r.iter()
                .enumerate()
                .filter(|&(i, &x)| ok(i) && x < k)
                .count() as f64
                / total.max(1) as f64
        })
    };
    Retrieval {
        pairs: m as u64,
        image_to_text: recall(&i_rank, &|i| has.get(i).copied().unwrap_or(false), n),
        text_to_image: recall(&t_rank, &|_| true, m),
        images: n as u64,
        set: String::new(),
    }
}
