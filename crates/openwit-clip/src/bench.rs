//! Evaluation sets in the formats users already have:
//!
//! - clip_benchmark's webdataset layout: `ROOT/classnames.txt`,
//!   `ROOT/zeroshot_classification_templates.txt` (`{c}` = the class name), optional
//!   `ROOT/dataset_type.txt` (`retrieval` for image-caption sets), and per split
//!   `ROOT/SPLIT/nshards.txt` + `ROOT/SPLIT/{0..N-1}.tar` holding `KEY.cls` (a class index) or
//!   `KEY.txt` (the captions, one per line) next to `KEY.webp|png|jpg|jpeg` (the first of those
//!   the sample has, in that order, as clip_benchmark takes it);
//! - ImageFolder: `ROOT/<class>/**/*.{jpg,jpeg,png,ppm,bmp,pgm,tif,tiff,webp}` as torchvision reads
//!   it, the sorted sub-folder names being the classes (underscores read as spaces); with `ROOT/captions.tsv` (`file<TAB>caption` or
//!   `file<TAB>class<TAB>caption`, the file relative to ROOT, a header line allowed) giving every
//!   image a caption, it is a retrieval set as well;
//! - OpenWIT shards (`openwit download`'s webdataset): `KEY.jpg` + `KEY.txt` (one caption),
//!   classified by their `.cls` entry or by the class their caption names.
//!
//! A set is read as a stream of samples, in order, batch by batch.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::captions_tsv::parse_captions_tsv;
use crate::data::{BENCHMARK_IMAGES, RawSample, TRAINING_IMAGES, read_tar_samples, resolve_shards};
use crate::error::{ClipError, IoAt, Result};
use crate::measures::{Labels, class_in_caption};

/// Where an evaluation set is and in which format (one of `benchmark`, `folder`, `shards`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetSpec {
    /// A clip_benchmark webdataset root (`classnames.txt`, `SPLIT/nshards.txt`, `SPLIT/*.tar`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benchmark: Option<String>,
    /// The split of `benchmark` (default `test`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    /// An ImageFolder: one sub-folder per class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    /// OpenWIT shards (files, folders, brace patterns).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<String>,
    /// The class of a sample in `shards`: its `.cls` entry or the class its caption names.
    #[serde(default, skip_serializing_if = "Labels::is_cls")]
    pub labels: Labels,
    /// Class names in class-index order (needed with `shards`; a `benchmark` or `folder` names
    /// its own classes, which this replaces when given).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
}

impl SetSpec {
    /// Checks that exactly one source is given; `what` names the table in messages.
    pub fn validate(&self, what: &str) -> Result<()> {
        let n = self.benchmark.is_some() as u8
            + self.folder.is_some() as u8
            + (!self.shards.is_empty()) as u8;
        if n != 1 {
            return Err(ClipError::Config(format!(
                "{what} needs exactly one of `benchmark` (a clip_benchmark webdataset folder), `folder` (one sub-folder per class) or `shards` (OpenWIT shards)"
            )));
        }
        if self.split.is_some() && self.benchmark.is_none() {
            return Err(ClipError::Config(format!(
                "{what}: `split` goes with `benchmark`"
            )));
        }
        Ok(())
    }
}

/// What a set is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    /// Images with a class each.
    Classification,
    /// Images with one or more captions each.
    Retrieval,
}

#[derive(Debug, Clone, PartialEq)]
enum Source {
    /// (file, class index, captions: an image folder's `captions.tsv`, else none)
    Files(Vec<(PathBuf, i64, Vec<String>)>),
    Tars {
        tars: Vec<PathBuf>,
        labels: Labels,
        /// Captions one per line (clip_benchmark) or the whole text as one caption (OpenWIT).
        multi_caption: bool,
    },
}

/// One sample of a set.
#[derive(Debug, Clone)]
pub struct EvalSample {
    /// Where it comes from, for messages: the file, or `SHARD.tar:KEY`.
    pub name: String,
    pub image: Vec<u8>,
    /// Class index (classification sets).
    pub class: Option<i64>,
    /// Captions (retrieval sets; OpenWIT shards have one).
    pub captions: Vec<String>,
}

/// Which samples of OpenWIT shards a measure reads when the training run held some out
/// (`[train] held_out_percent`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// The held-out samples only (what training never read).
    #[default]
    HeldOut,
    /// The samples training read.
    Train,
    /// Every sample.
    All,
}

impl Part {
    pub fn is_held_out(&self) -> bool {
        *self == Part::HeldOut
    }
}

/// An opened evaluation set.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalSet {
    /// Where it is, for people.
    pub name: String,
    pub kind: SetKind,
    /// OpenWIT shards of a run with a held-out split: (its percentage, the part read).
    pub split: Option<(u32, Part)>,
    /// Class names in class-index order (empty for a retrieval-only set).
    pub classes: Vec<String>,
    /// The set's own prompt templates (clip_benchmark's file), `{c}` = the class name.
    pub templates: Option<Vec<String>>,
    source: Source,
}

/// The extensions torchvision's `ImageFolder` reads (its `IMG_EXTENSIONS`), compared in lower case.
pub(crate) const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp",
];

fn is_image_file(p: &Path) -> bool {
    p.extension().is_some_and(|x| {
        IMAGE_EXTENSIONS.contains(&x.to_string_lossy().to_ascii_lowercase().as_str())
    })
}

/// An image folder as torchvision's `ImageFolder` reads it: the sub-folders of `root`, sorted by
/// name, are the classes (the name with underscores read as spaces); a class's pictures are the
/// files with one of [`IMAGE_EXTENSIONS`] anywhere below its folder, links followed, in the order
/// of `sorted(os.walk(folder))` and then sorted names. A class folder without a picture is an
/// error, as torchvision's.
pub(crate) fn class_folders(root: &Path) -> Result<Vec<(String, Vec<PathBuf>)>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .at(root)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort_by(|a, b| by_bytes(a, b));
    let mut out = Vec::with_capacity(dirs.len());
    let mut empty = Vec::new();
    for dir in dirs {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let files = walk_images(&dir)?;
        if files.is_empty() {
            empty.push(name.clone());
        }
        out.push((name.replace('_', " "), files));
    }
    if !empty.is_empty() {
        return Err(ClipError::Config(format!(
            "{}: no picture in the class folder(s) {} (an image folder holds one sub-folder per class with .{} files, any case, in sub-folders too, as torchvision's ImageFolder reads it); add their pictures or remove the folders",
            root.display(),
            empty.join(", "),
            IMAGE_EXTENSIONS.join("/.")
        )));
    }
    Ok(out)
}

/// The pictures below `dir` in `sorted(os.walk(dir, followlinks=True))` order: folders by their
/// path (as strings), each folder's files by name. A folder reached again through a link is read
/// once.
fn walk_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut folders: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if !seen.insert(std::fs::canonicalize(&d).at(&d)?) {
            continue;
        }
        let mut files = Vec::new();
        for e in std::fs::read_dir(&d).at(&d)? {
            let p = e.at(&d)?.path();
            if p.is_dir() {
                stack.push(p);
            } else if is_image_file(&p) {
                files.push(p);
            }
        }
        files.sort_by(|a, b| by_bytes(a, b));
        folders.push((d, files));
    }
    folders.sort_by(|a, b| by_bytes(&a.0, &b.0));
    Ok(folders.into_iter().flat_map(|(_, f)| f).collect())
}

/// Paths in the order of their bytes, as Python sorts the `str` paths `os` gives (code point
/// order, which UTF-8 bytes keep).
fn by_bytes(a: &Path, b: &Path) -> std::cmp::Ordering {
    a.as_os_str()
        .as_encoded_bytes()
        .cmp(b.as_os_str().as_encoded_bytes())
}

fn read_lines(path: &Path) -> Result<Option<Vec<String>>> {
    match std::fs::read_to_string(path) {
        // As clip_benchmark reads them: every line, stripped.
        Ok(s) => Ok(Some(s.lines().map(|l| l.trim().to_string()).collect())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ClipError::io(path, e)),
    }
}

impl EvalSet {
    /// Opens `spec`, relative paths against `base`.
    pub fn open(spec: &SetSpec, base: &Path) -> Result<EvalSet> {
        spec.validate("an evaluation set")?;
        let mut set = if let Some(root) = &spec.benchmark {
            EvalSet::clip_benchmark(&base.join(root), spec.split.as_deref().unwrap_or("test"))?
        } else if let Some(folder) = &spec.folder {
            EvalSet::image_folder(&base.join(folder))?
        } else {
            EvalSet::shards(
                resolve_shards(&spec.shards, base)?,
                spec.classes.clone(),
                spec.labels,
            )
        };
        if !spec.classes.is_empty() {
            set.classes = spec.classes.clone();
        }
        Ok(set)
    }

    /// clip_benchmark's webdataset layout (`build_wds_dataset`): `root/split/nshards.txt` says
    /// how many shards `root/split/{0..N-1}.tar` there are (without it: every `.tar` of the split
    /// folder, in numeric order).
    pub fn clip_benchmark(root: &Path, split: &str) -> Result<EvalSet> {
        let dir = root.join(split);
        if !dir.is_dir() {
            return Err(ClipError::Config(format!(
                "{}: no split folder `{split}`; a clip_benchmark set holds ROOT/SPLIT/nshards.txt and ROOT/SPLIT/0.tar, ...",
                root.display()
            )));
        }
        let tars = match read_lines(&dir.join("nshards.txt"))? {
            Some(lines) => {
                let n: usize = lines.first().and_then(|l| l.parse().ok()).ok_or_else(|| {
                    ClipError::Config(format!(
                        "{}: not a number of shards",
                        dir.join("nshards.txt").display()
                    ))
                })?;
                (0..n).map(|i| dir.join(format!("{i}.tar"))).collect()
            }
            None => {
                let mut tars: Vec<(u64, PathBuf)> = std::fs::read_dir(&dir)
                    .at(&dir)?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter_map(|p| {
                        let stem = p.file_stem()?.to_str()?.parse().ok()?;
                        (p.extension()? == "tar").then_some((stem, p))
                    })
                    .collect();
                tars.sort();
                tars.into_iter().map(|(_, p)| p).collect::<Vec<_>>()
            }
        };
        if tars.is_empty() {
            return Err(ClipError::Config(format!("{}: no shards", dir.display())));
        }
        let kind = match read_lines(&root.join("dataset_type.txt"))? {
            Some(l)
                if l.first()
                    .is_some_and(|t| t.eq_ignore_ascii_case("retrieval")) =>
            {
                SetKind::Retrieval
            }
            Some(l)
                if l.first()
                    .is_some_and(|t| t.eq_ignore_ascii_case("multilabel")) =>
            {
                return Err(ClipError::Config(format!(
                    "{}: multi-label sets are not supported",
                    root.display()
                )));
            }
            _ => SetKind::Classification,
        };
        let (classes, templates) = if kind == SetKind::Classification {
            let classes = read_lines(&root.join("classnames.txt"))?.ok_or_else(|| {
                ClipError::Config(format!(
                    "{}: no classnames.txt (one class name a line, in class-index order)",
                    root.display()
                ))
            })?;
            let templates = read_lines(&root.join("zeroshot_classification_templates.txt"))?;
            (classes, templates)
        } else {
            (Vec::new(), None)
        };
        Ok(EvalSet {
            name: format!("{} ({split})", root.display()),
            kind,
            split: None,
            classes,
            templates,
            source: Source::Tars {
                tars,
                labels: Labels::Cls,
                multi_caption: true,
            },
        })
    }

    /// An ImageFolder (torchvision's layout): one sub-folder per class, sorted.
    pub fn image_folder(root: &Path) -> Result<EvalSet> {
        let mut classes = Vec::new();
        let mut files = Vec::new();
        for (ci, (name, own)) in class_folders(root)?.into_iter().enumerate() {
            classes.push(name);
            files.extend(own.into_iter().map(|f| (f, ci as i64, Vec::new())));
        }
        let tsv = root.join("captions.tsv");
        if let Some(lines) = read_lines(&tsv)? {
            let mut by_file: std::collections::HashMap<PathBuf, Vec<String>> = Default::default();
            for (file, caption) in parse_captions_tsv(&lines)
                .map_err(|(n, e)| ClipError::Data(format!("{}:{n}: {e}", tsv.display())))?
            {
                by_file.entry(root.join(file)).or_default().push(caption);
            }
            for (path, _, captions) in &mut files {
                if let Some(c) = by_file.remove(path.as_path()) {
                    *captions = c;
                }
            }
        }
        if files.is_empty() {
            return Err(ClipError::Config(format!(
                "{}: no class folders found; an image folder holds one sub-folder per class with .{} files",
                root.display(),
                IMAGE_EXTENSIONS.join("/.")
            )));
        }
        Ok(EvalSet {
            name: root.display().to_string(),
            kind: SetKind::Classification,
            split: None,
            classes,
            templates: None,
            source: Source::Files(files),
        })
    }

    /// OpenWIT shards: each sample's caption, and its class from `labels`.
    pub fn shards(tars: Vec<PathBuf>, classes: Vec<String>, labels: Labels) -> EvalSet {
        EvalSet {
            name: if tars.len() == 1 {
                tars[0].display().to_string()
            } else {
                format!("{} shards", tars.len())
            },
            kind: if classes.is_empty() {
                SetKind::Retrieval
            } else {
                SetKind::Classification
            },
            split: None,
            classes,
            templates: None,
            source: Source::Tars {
                tars,
                labels,
                multi_caption: false,
            },
        }
    }

    /// Reads only `part` of OpenWIT shards split `percent`% held out by a training run (no
    /// effect on other formats, which are never trained on).
    /// The tar shards the set reads (none for a set of image files).
    pub fn shard_files(&self) -> &[PathBuf] {
        match &self.source {
            Source::Tars { tars, .. } => tars,
            Source::Files(_) => &[],
        }
    }

    /// Whether `other` reads the same samples in the same order (class names and templates
    /// aside): the same files or shards, the same labels and part.
    pub fn same_samples(&self, other: &EvalSet) -> bool {
        self.source == other.source && self.split == other.split
    }

    pub fn with_split(mut self, percent: u32, part: Part) -> EvalSet {
        if percent > 0
            && matches!(
                self.source,
                Source::Tars {
                    multi_caption: false,
                    ..
                }
            )
        {
            self.split = Some((percent, part));
            if part != Part::All {
                self.name = format!(
                    "{} ({} part)",
                    self.name,
                    if part == Part::HeldOut {
                        "held-out"
                    } else {
                        "training"
                    }
                );
            }
        }
        self
    }

    /// Whether its samples carry captions (retrieval can run on it).
    pub fn has_captions(&self) -> bool {
        match &self.source {
            Source::Files(files) => files.iter().all(|(_, _, c)| !c.is_empty()),
            Source::Tars { multi_caption, .. } => !multi_caption || self.kind == SetKind::Retrieval,
        }
    }

    /// Calls `f` with the samples in order, `batch` at a time. With `classified`, every sample
    /// gets its class (an error when one has none; with caption labels, samples whose caption
    /// names no class or several are left out and counted). Returns the left-out count.
    pub fn for_each_batch(
        &self,
        batch: usize,
        classified: bool,
        mut f: impl FnMut(Vec<EvalSample>) -> Result<()>,
    ) -> Result<u64> {
        let batch = batch.max(1);
        let mut left_out = 0u64;
        match &self.source {
            Source::Files(files) => {
                for chunk in files.chunks(batch) {
                    let mut out = Vec::with_capacity(chunk.len());
                    for (path, class, captions) in chunk {
                        out.push(EvalSample {
                            name: path.display().to_string(),
                            image: std::fs::read(path).at(path)?,
                            class: Some(*class),
                            captions: captions.clone(),
                        });
                    }
                    f(out)?;
                }
            }
            Source::Tars {
                tars,
                labels,
                multi_caption,
            } => {
                let need_text = !classified || *labels == Labels::Caption;
                // A clip_benchmark set (the one with a caption per line) as clip_benchmark
                // reads it, OpenWIT shards as OpenCLIP's loader does: a sample with two
                // pictures gives the one each prefers.
                let images: &[&str] = if *multi_caption {
                    &BENCHMARK_IMAGES
                } else {
                    &TRAINING_IMAGES
                };
                let mut pending: Vec<EvalSample> = Vec::with_capacity(batch);
                let mut err: Option<ClipError> = None;
                for tar in tars {
                    let mut drops = openwit_core::Drops::default();
                    read_tar_samples(tar, &mut drops, need_text, images, |s: RawSample| {
                        if let Some((percent, part)) = self.split {
                            let held = crate::data::held_out(&s.image, percent);
                            if (part == Part::HeldOut && !held) || (part == Part::Train && held) {
                                return true;
                            }
                        }
                        let captions = if *multi_caption {
                            s.text.lines().map(str::to_string).collect()
                        } else {
                            vec![s.text.clone()]
                        };
                        let class = if !classified {
                            s.class
                        } else {
                            match labels {
                                Labels::Cls => match s.class {
                                    Some(c) if c >= 0 && (c as usize) < self.classes.len() => {
                                        Some(c)
                                    }
                                    Some(c) => {
                                        err = Some(ClipError::Data(format!(
                                            "{}: sample {} has class {c}, but there are {} class names",
                                            tar.display(),
                                            s.key,
                                            self.classes.len()
                                        )));
                                        return false;
                                    }
                                    None => {
                                        err = Some(ClipError::Data(format!(
                                            "{}: sample {} has no `.cls` entry; classification needs a class index per sample (or `labels = \"caption\"`)",
                                            tar.display(),
                                            s.key
                                        )));
                                        return false;
                                    }
                                },
                                Labels::Caption => match class_in_caption(&s.text, &self.classes) {
                                    Some(c) => Some(c as i64),
                                    None => {
                                        left_out += 1;
                                        return true;
                                    }
                                },
                            }
                        };
                        pending.push(EvalSample {
                            name: format!("{}:{}", tar.display(), s.key),
                            image: s.image,
                            class,
                            captions,
                        });
                        if pending.len() >= batch
                            && let Err(e) = f(std::mem::take(&mut pending))
                        {
                            err = Some(e);
                            return false;
                        }
                        true
                    });
                    if let Some(e) = err.take() {
                        return Err(e);
                    }
                    if drops.get("shard_unreadable") > 0 {
                        return Err(ClipError::Data(format!(
                            "{}: cannot read this shard",
                            tar.display()
                        )));
                    }
                    for (reason, n) in &drops.0 {
                        tracing::warn!(shard = %tar.display(), reason, n, "samples skipped");
                    }
                }
                if !pending.is_empty() {
                    f(pending)?;
                }
            }
        }
        Ok(left_out)
    }
}
