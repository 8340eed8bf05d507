//! The files one stage writes and another reads, declared once (ARCHITECTURE.md, "Data
//! contracts"): for each, the stage that writes it, its file names, its schema where it is a
//! table, and how a reader finds it.
//!
//! A stage reads an upstream artifact only through its context, never by joining another
//! stage's folder by hand: [`files`] (or [`file`] for a single file) returns the committed paths
//! from the producing stage's task records ([`StageContext::upstream_outputs`]), which the stage
//! must declare in [`Stage::upstream`](crate::Stage::upstream); a missing one is an error that
//! names the stage and the fix. Where a stage reads an artifact only if it is there (the index's
//! entry names, eval's training shards), [`find`] (one file) and [`find_files`] look through the
//! context when the producer is declared and in the producer's folder otherwise. Tools that read a finished workdir outside a run (the report
//! served by `openwit serve`) use [`in_workdir`].
//!
//! | artifact | type | producer | readers |
//! |---|---|---|---|
//! | query list | [`QueryList`] | `queries` | `curate`, `balance`, `index`, `report` |
//! | candidate table | [`Candidates`], [`candidates`] | `crawl`, `warc`, `import` | `curate` |
//! | curated table | [`Curated`], [`curated`] | `curate` | `download` |
//! | entry counts | [`EntryCounts`] | `curate`, `balance` | `report`, `serve` |
//! | shards | [`Shards`], [`ShardTars`], [`ShardTables`], [`ShardStats`] | `download` | `index`, `balance`, `train`, `eval`, `report` |
//! | index | [`Index`] | `index` | `report`, `serve`, `search` |
//! | model | [`Model`] | `train` | `eval`, `report` |
//! | evaluation results | [`EvalResults`] | `eval` | `report` |

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::stage::{StageContext, TaskContext};

/// Files one stage writes and others read.
pub trait Artifact {
    /// What it is, for messages ("query list").
    const NAME: &'static str;
    /// The stage that writes it by default (its folder in the workdir).
    const PRODUCER: &'static str;
    /// Whether `rel`, a committed output's path relative to its stage's folder, is one of its
    /// files.
    fn contains(rel: &Path) -> bool;
}

/// An artifact that is one file.
pub trait OneFile: Artifact {
    /// Its name in the producer's folder.
    const FILE: &'static str;
}

/// What a stage sees of its upstream stages: [`StageContext`] and [`TaskContext`] both.
pub trait Upstream {
    /// The run's workdir.
    fn workdir(&self) -> &Path;
    /// The stage that reads.
    fn reader(&self) -> &str;
    /// Whether the reading stage declared `stage` in [`Stage::upstream`](crate::Stage::upstream).
    fn declares(&self, stage: &str) -> bool;
    /// The committed output paths (absolute) of the upstream `stage`, in plan order.
    fn outputs(&self, stage: &str) -> Vec<PathBuf>;
}

/// Both contexts hold the workdir, the reading stage and its declared upstream stages alike.
macro_rules! upstream_of_contexts {
    ($($ctx:ident),*) => {$(
        impl Upstream for $ctx<'_> {
            fn workdir(&self) -> &Path {
                self.workdir
            }
            fn reader(&self) -> &str {
                self.stage
            }
            fn declares(&self, stage: &str) -> bool {
                self.upstream.contains_key(stage)
            }
            fn outputs(&self, stage: &str) -> Vec<PathBuf> {
                self.upstream_outputs(stage)
            }
        }
    )*};
}

upstream_of_contexts!(StageContext, TaskContext);

/// The committed files of `A` that the upstream stage `stage` wrote (usually `A::PRODUCER`;
/// another where the config names it, e.g. `[balance] from`), in plan order. An error when the
/// reading stage did not declare `stage` upstream.
pub fn files_from<A: Artifact>(ctx: &impl Upstream, stage: &str) -> Result<Vec<PathBuf>> {
    if !ctx.declares(stage) {
        return Err(Error::Stage(format!(
            "stage `{}` reads the {} of stage `{stage}` without declaring `{stage}` upstream \
             (a bug: add it to the stage's `Stage::upstream`)",
            ctx.reader(),
            A::NAME
        )));
    }
    let dir = ctx.workdir().join(stage);
    Ok(ctx
        .outputs(stage)
        .into_iter()
        .filter(|p| p.strip_prefix(&dir).is_ok_and(A::contains))
        .collect())
}

/// The committed files of `A` that its producer wrote.
pub fn files<A: Artifact>(ctx: &impl Upstream) -> Result<Vec<PathBuf>> {
    files_from::<A>(ctx, A::PRODUCER)
}

/// The one committed file of `A` that the upstream `stage` wrote; an error naming the stage and
/// the fix when it wrote none.
pub fn file_from<A: OneFile>(ctx: &impl Upstream, stage: &str) -> Result<PathBuf> {
    let want = ctx.workdir().join(stage).join(A::FILE);
    files_from::<A>(ctx, stage)?
        .into_iter()
        .find(|p| *p == want)
        .ok_or_else(|| {
            Error::Stage(format!(
                "stage `{}` reads the {} `{stage}/{}`, which stage `{stage}` has not committed in {}; \
                 fix: rerun it (`openwit {stage} PIPELINE.toml --restart {stage}`)",
                ctx.reader(),
                A::NAME,
                A::FILE,
                ctx.workdir().display()
            ))
        })
}

/// The one committed file of `A` that its producer wrote.
pub fn file<A: OneFile>(ctx: &impl Upstream) -> Result<PathBuf> {
    file_from::<A>(ctx, A::PRODUCER)
}

/// `A`'s file when it is there: through the context when the reading stage declared the
/// producer upstream, else in the producer's folder of the workdir (a stage that reads it only
/// if the producer ran, without waiting for it).
pub fn find<A: OneFile>(ctx: &impl Upstream) -> Option<PathBuf> {
    if ctx.declares(A::PRODUCER) {
        return file::<A>(ctx).ok();
    }
    Some(in_workdir::<A>(ctx.workdir())).filter(|p| p.is_file())
}

/// `A`'s files when they are there: through the context when the reading stage declared the
/// producer upstream (as [`files`], in plan order), else those in the producer's folder of the
/// workdir ([`list_in`], sorted by name; none when the producer did not run). For a stage that reads them only
/// if the producer ran, without waiting for it (eval's overlap analysis and the shards).
pub fn find_files<A: Artifact>(ctx: &impl Upstream) -> Result<Vec<PathBuf>> {
    if ctx.declares(A::PRODUCER) {
        return files::<A>(ctx);
    }
    Ok(list_in::<A>(&dir_in_workdir::<A>(ctx.workdir())))
}

/// Where `A`'s file lies in a workdir (whether it is there or not), for tools that read a
/// finished workdir outside a run.
pub fn in_workdir<A: OneFile>(workdir: &Path) -> PathBuf {
    dir_in_workdir::<A>(workdir).join(A::FILE)
}

/// The producer's folder in a workdir, where `A`'s files lie.
pub fn dir_in_workdir<A: Artifact>(workdir: &Path) -> PathBuf {
    workdir.join(A::PRODUCER)
}

/// `A`'s files in a folder (not recursive), sorted by name: for tools that read a finished
/// workdir outside a run, and for folders given in a config.
pub fn list_in<A: Artifact>(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.strip_prefix(dir).is_ok_and(A::contains))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Whether `p`'s file name is `<digits>.<ext>` (a shard's `00042.tar`).
fn digits_dot(p: &Path, ext: &str) -> bool {
    p.parent().is_some_and(|d| d.as_os_str().is_empty())
        && p.extension().is_some_and(|e| e == ext)
        && p.file_stem().is_some_and(|s| {
            !s.is_empty() && s.to_string_lossy().bytes().all(|b| b.is_ascii_digit())
        })
}

fn is_file(rel: &Path, name: &str) -> bool {
    rel == Path::new(name)
}

/// Declares `$t` an artifact: what it is (`name`), the stage that writes it (`producer`), and
/// either which of that stage's committed outputs are its files (`contains: |rel| ...`, `rel`
/// relative to the producer's folder) or, for an artifact that is one file, that file's name
/// (`file`: its [`OneFile`] too, whose files are that one).
macro_rules! artifact {
    ($t:ident, name: $name:expr, producer: $producer:expr, contains: |$rel:ident| $body:expr) => {
        impl Artifact for $t {
            const NAME: &'static str = $name;
            const PRODUCER: &'static str = $producer;
            fn contains($rel: &Path) -> bool {
                $body
            }
        }
    };
    ($t:ident, name: $name:expr, producer: $producer:expr, file: $file:expr) => {
        artifact!($t, name: $name, producer: $producer,
            contains: |rel| is_file(rel, <$t as OneFile>::FILE));

        impl OneFile for $t {
            const FILE: &'static str = $file;
        }
    };
}

/// The query list of the `queries` stage: `queries/metadata.json`, a flat JSON list of entries
/// (an entry's id is its index), MetaCLIP-compatible. The stage's other files
/// (`queries.parquet`, the count tables) are read by no other stage.
pub struct QueryList;

artifact!(QueryList, name: "query list", producer: "queries", file: "metadata.json");

/// The candidate table as an artifact: the `*.parquet` files of a source stage outside its
/// `dropped/` listings (whose rows have `url` and `caption` columns too, never candidates).
/// Its columns: [`candidates`]. Several stages write it ([`Candidates::PRODUCERS`]; `PRODUCER`
/// is the first): `curate` reads those named in its `sources`, with [`files_from`].
pub struct Candidates;

/// The folder under a stage's folder that holds its dropped-record listings.
pub const DROPPED_DIR: &str = "dropped";

impl Candidates {
    /// The stages that write it: the source stages, which `curate` reads by default.
    pub const PRODUCERS: &'static [&'static str] = &["crawl", "warc", "import"];
}

artifact!(Candidates, name: "candidate table", producer: "crawl", contains: |rel| {
    rel.extension().is_some_and(|e| e == "parquet")
        && rel
            .components()
            .next()
            .is_some_and(|c| c.as_os_str() != DROPPED_DIR)
});

/// The curated table of `curate`: `part-NNNNN.parquet`, the candidate columns plus those of
/// [`curated`] (`download` reads its kept rows).
pub struct Curated;

artifact!(Curated, name: "curated table", producer: "curate", contains: |rel| {
    rel.parent().is_some_and(|d| d.as_os_str().is_empty())
        && rel.extension().is_some_and(|e| e == "parquet")
        && rel
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("part-"))
});

/// The entries' counts of `curate` (and `balance`): `entry_counts.parquet`, one row per entry
/// with its matches before balancing and the rows kept.
pub struct EntryCounts;

impl EntryCounts {
    /// The stages that write it: `curate` (before downloading) and `balance` (after).
    pub const PRODUCERS: [&'static str; 2] = ["curate", "balance"];

    /// `<stage>/entry_counts.parquet`, relative to the workdir, of each of [`Self::PRODUCERS`].
    pub fn paths() -> [String; 2] {
        Self::PRODUCERS.map(|s| format!("{s}/{}", Self::FILE))
    }
}

artifact!(EntryCounts, name: "entry counts", producer: "curate", file: "entry_counts.parquet");

/// The shards of `download` (img2dataset's layout): per shard `NNNNN.tar` (webdataset
/// samples), `NNNNN.parquet` (one row per input row, `openwit_shard`'s schema) and
/// `NNNNN_stats.json`; and `sizes.json` for the stage.
pub struct Shards;

artifact!(Shards, name: "shards", producer: "download", contains: |rel| {
    ShardTars::contains(rel)
        || ShardTables::contains(rel)
        || ShardStats::contains(rel)
        || is_file(rel, "sizes.json")
});

/// The shards' tars alone: `download/NNNNN.tar`.
pub struct ShardTars;

artifact!(ShardTars, name: "shards (tar)", producer: "download",
    contains: |rel| digits_dot(rel, "tar"));

/// The shards' tables alone: `download/NNNNN.parquet`.
pub struct ShardTables;

artifact!(ShardTables, name: "shards (parquet)", producer: "download",
    contains: |rel| digits_dot(rel, "parquet"));

/// The shards' statistics alone: `download/NNNNN_stats.json`.
pub struct ShardStats;

artifact!(ShardStats, name: "shards (statistics)", producer: "download", contains: |rel| {
    rel.parent().is_some_and(|d| d.as_os_str().is_empty())
        && rel
            .to_string_lossy()
            .strip_suffix("_stats.json")
            .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
});

/// The search index of the `index` stage: its folder `index/` (one sub-index per shard, read
/// with `openwit_index::IndexSet::open`).
pub struct Index;

artifact!(Index, name: "index", producer: "index", contains: |_rel| true);

/// The model of the `train` stage: `train/model.safetensors` (OpenCLIP's state-dict names)
/// and `train/train.json` (its model config under `model`, the run summary under `summary`).
/// The stage's folder also holds, written while it trains and not committed as outputs,
/// `metrics.jsonl`, `curves.svg`, `checkpoints/`, and with `held_out_percent` `split.json`
/// and `split.tsv` ([`Model::METRICS`], [`Model::SPLIT`]).
pub struct Model;

impl Model {
    /// The weights' file.
    pub const WEIGHTS: &'static str = "model.safetensors";
    /// The model config and run summary.
    pub const CONFIG: &'static str = "train.json";
    /// The training curve (one JSON object per logged step).
    pub const METRICS: &'static str = "metrics.jsonl";
    /// The held-out split's rule (`held_out_percent`).
    pub const SPLIT: &'static str = "split.json";

    /// `train.json` of the upstream `train` stage, through the context.
    pub fn config_file(ctx: &impl Upstream) -> Result<PathBuf> {
        let p = file::<Model>(ctx)?;
        Ok(p.with_file_name(Self::CONFIG))
    }

    /// The producer's folder in a workdir (for the files it writes while it trains).
    pub fn dir(workdir: &Path) -> PathBuf {
        dir_in_workdir::<Model>(workdir)
    }
}

artifact!(Model, name: "model", producer: "train",
    contains: |rel| is_file(rel, Model::WEIGHTS) || is_file(rel, Model::CONFIG));

impl OneFile for Model {
    const FILE: &'static str = Model::WEIGHTS;
}

/// The candidate table: one (image URL, caption) pair per row, `<stage>/*.parquet` of the source
/// stages.
pub mod candidates {
    use std::sync::Arc;

    use arrow_schema::{DataType, Field, Schema, SchemaRef};

    /// The columns in order: name, type, and whether the source stages may leave it null.
    pub const COLUMNS: &[(&str, DataType, bool)] = &[
        ("url", DataType::Utf8, false),
        ("caption", DataType::Utf8, false),
        ("caption_source", DataType::Utf8, false),
        ("page_url", DataType::Utf8, true),
        ("page_lang", DataType::Utf8, true),
        ("width", DataType::Int32, true),
        ("height", DataType::Int32, true),
        ("source_id", DataType::Utf8, false),
        ("fetch_time", DataType::Int64, true),
        ("extra", DataType::Utf8, true),
    ];

    /// The columns a candidate file from any tool must have: the rest may be absent (read as
    /// nulls).
    pub const REQUIRED: &[&str] = &["url", "caption"];

    /// The schema the source stages write (`COLUMNS` with their nullability).
    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(
            COLUMNS
                .iter()
                .map(|(n, t, null)| Field::new(*n, t.clone(), *null))
                .collect::<Vec<_>>(),
        ))
    }

    /// The schema `curate` reads any candidate file into: the same columns, nullable except
    /// [`REQUIRED`] (a file written by another tool may lack `caption_source` or `source_id`).
    pub fn reading_fields() -> Vec<Field> {
        COLUMNS
            .iter()
            .map(|(n, t, _)| Field::new(*n, t.clone(), !REQUIRED.contains(n)))
            .collect()
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn the_reading_schema_relaxes_only_nullability() {
            let w = super::schema();
            let r = super::reading_fields();
            assert_eq!(w.fields().len(), r.len());
            for (a, b) in w.fields().iter().zip(&r) {
                assert_eq!((a.name(), a.data_type()), (b.name(), b.data_type()));
                assert!(b.is_nullable() || !a.is_nullable());
            }
        }
    }
}

/// The results of the `eval` stage: `eval/*.json` (`results.json`: per measure, per class
/// with its confusions), beside `results.txt` for people and [`OVERLAP_PAIRS`] (every overlap
/// the overlap analysis found).
pub struct EvalResults;

/// The file beside `eval`'s `results.json` that lists every overlap its overlap analysis found,
/// one JSON object a line (read by the report).
pub const OVERLAP_PAIRS: &str = "overlap.jsonl";

artifact!(EvalResults, name: "evaluation results", producer: "eval", contains: |rel| {
    rel.parent().is_some_and(|d| d.as_os_str().is_empty())
        && rel.extension().is_some_and(|e| e == "json")
});

/// The curated table's columns beyond the candidate ones: what `curate` adds to each row and
/// `download` reads.
pub mod curated {
    use std::sync::Arc;

    use arrow_schema::{DataType, Field, Schema, SchemaRef};

    /// The caption's language (fastText label without the prefix, or `und`).
    pub const LANGUAGE: &str = "language";
    /// The language identifier's confidence.
    pub const LANGUAGE_CONFIDENCE: &str = "language_confidence";
    /// The ids of the entries (the query list's indexes) the caption matches.
    pub const ENTRY_IDS: &str = "entry_ids";
    /// Whether balancing kept the row (`download` reads only kept rows).
    pub const KEPT: &str = "kept";

    /// The type of [`ENTRY_IDS`].
    pub fn entry_ids_type() -> DataType {
        DataType::List(Arc::new(Field::new("item", DataType::Int32, false)))
    }

    /// The fields of the columns added to the candidate ones, in order.
    pub fn added_fields() -> Vec<Field> {
        vec![
            Field::new(LANGUAGE, DataType::Utf8, false),
            Field::new(LANGUAGE_CONFIDENCE, DataType::Float32, false),
            Field::new(ENTRY_IDS, entry_ids_type(), false),
            Field::new(KEPT, DataType::Boolean, false),
        ]
    }

    /// The curated table's schema: the candidate columns as curate reads them
    /// ([`super::candidates::reading_fields`]) and [`added_fields`].
    pub fn schema() -> SchemaRef {
        let mut f = super::candidates::reading_fields();
        f.extend(added_fields());
        Arc::new(Schema::new(f))
    }
}

/// The columns of [`EntryCounts`]' `entry_counts.parquet`: one row per entry of the query
/// list.
pub mod entry_counts {
    use std::sync::Arc;

    use arrow_schema::{DataType, Field, Schema, SchemaRef};

    /// The columns in order: name and type (none null).
    pub const COLUMNS: &[(&str, DataType)] = &[
        // the entry's text
        ("entry", DataType::Utf8),
        // its id (index in the query list)
        ("id", DataType::Int32),
        // candidates that match it, before balancing
        ("matches", DataType::Int64),
        // `matches * p`, its own draws
        ("expected_kept", DataType::Float64),
        // kept rows that match it
        ("kept", DataType::Int64),
    ];

    /// The schema `curate` and `balance` write.
    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(
            COLUMNS
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), false))
                .collect::<Vec<_>>(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn each_artifact_knows_its_files() {
        assert!(QueryList::contains(Path::new("metadata.json")));
        assert!(!QueryList::contains(Path::new("queries.parquet")));
        assert!(Candidates::contains(Path::new("part-0.parquet")));
        assert!(!Candidates::contains(Path::new("dropped/t.parquet")));
        assert!(Curated::contains(Path::new("part-00001.parquet")));
        assert!(!Curated::contains(Path::new("entry_counts.parquet")));
        assert!(!Curated::contains(Path::new("dropped/part-1.parquet")));
        assert!(EntryCounts::contains(Path::new("entry_counts.parquet")));
        assert!(!EntryCounts::contains(Path::new(
            "dropped/entry_counts.parquet"
        )));
        for f in [
            "00000.tar",
            "00000.parquet",
            "00000_stats.json",
            "sizes.json",
        ] {
            assert!(Shards::contains(Path::new(f)), "{f}");
        }
        assert!(ShardTars::contains(Path::new("00012.tar")));
        assert!(!ShardTars::contains(Path::new("00012.parquet")));
        assert!(!ShardTars::contains(Path::new("x.tar")));
        assert!(!ShardTables::contains(Path::new("a/00012.parquet")));
        assert!(ShardStats::contains(Path::new("00012_stats.json")));
        assert!(!ShardStats::contains(Path::new("_stats.json")));
        assert!(Model::contains(Path::new("model.safetensors")));
        assert!(Model::contains(Path::new("train.json")));
        assert!(!Model::contains(Path::new("metrics.jsonl")));
        assert!(EvalResults::contains(Path::new("results.json")));
        assert!(!EvalResults::contains(Path::new("results.txt")));
    }

    fn record(stage: &str, outputs: &[&str]) -> crate::TaskRecord {
        crate::TaskRecord {
            stage: stage.into(),
            task: "t".into(),
            ord: 0,
            payload: serde_json::Value::Null,
            status: crate::Status::Done,
            attempts: 1,
            outputs: outputs.iter().map(|o| format!("{stage}/{o}")).collect(),
            items_in: 0,
            items_out: 0,
            drops: Default::default(),
            extra: serde_json::Value::Null,
            last_error: None,
            elapsed_s: 0.0,
        }
    }

    #[test]
    fn a_stage_finds_upstream_artifacts_through_its_context() {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path();
        let mut up = std::collections::HashMap::new();
        up.insert(
            "queries".to_string(),
            vec![record("queries", &["metadata.json", "queries.parquet"])],
        );
        up.insert(
            "download".to_string(),
            vec![record(
                "download",
                &[
                    "00000.tar",
                    "00000.parquet",
                    "00000_stats.json",
                    "sizes.json",
                ],
            )],
        );
        let ctx = StageContext::new(w, "index", 1, &up);
        assert_eq!(
            file::<QueryList>(&ctx).unwrap(),
            w.join("queries/metadata.json")
        );
        assert_eq!(
            files::<ShardTars>(&ctx).unwrap(),
            [w.join("download/00000.tar")]
        );
        assert_eq!(files::<Shards>(&ctx).unwrap().len(), 4);
        // not declared upstream: an error that names both stages
        let e = files::<Model>(&ctx).unwrap_err().to_string();
        assert!(e.contains("`index`") && e.contains("`train`"), "{e}");
        // declared, but without the file: an error with the fix
        let curate_only = [(
            "curate".to_string(),
            vec![record("curate", &["part-00000.parquet"])],
        )]
        .into_iter()
        .collect();
        let e = file::<EntryCounts>(&StageContext::new(w, "index", 1, &curate_only))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("curate/entry_counts.parquet") && e.contains("openwit curate"),
            "{e}"
        );
        // optional: through the context when declared, else in the producer's folder if there
        assert_eq!(
            find::<QueryList>(&ctx),
            Some(w.join("queries/metadata.json"))
        );
        assert_eq!(find::<EntryCounts>(&ctx), None);
        std::fs::create_dir_all(w.join("curate")).unwrap();
        std::fs::write(w.join("curate/entry_counts.parquet"), b"x").unwrap();
        assert_eq!(
            find::<EntryCounts>(&ctx),
            Some(w.join("curate/entry_counts.parquet"))
        );
        assert_eq!(list_in::<EntryCounts>(&w.join("curate")).len(), 1);
        // several files: through the context when declared (committed ones only) ...
        std::fs::create_dir_all(w.join("download")).unwrap();
        for f in ["00001.tar", "00000.tar", "00000.parquet", "x.tar"] {
            std::fs::write(w.join("download").join(f), b"x").unwrap();
        }
        assert_eq!(
            find_files::<ShardTars>(&ctx).unwrap(),
            [w.join("download/00000.tar")]
        );
        // ... else the producer's folder, sorted, none when it is not there
        let none = std::collections::HashMap::new();
        let eval = StageContext::new(w, "eval", 1, &none);
        assert_eq!(
            find_files::<ShardTars>(&eval).unwrap(),
            [w.join("download/00000.tar"), w.join("download/00001.tar")]
        );
        assert!(find_files::<EvalResults>(&eval).unwrap().is_empty());
    }

    #[test]
    fn the_curated_schema_extends_the_candidate_one() {
        let s = curated::schema();
        let names: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
        let n = candidates::COLUMNS.len();
        assert_eq!(names.len(), n + 4);
        assert_eq!(
            &names[n..],
            ["language", "language_confidence", "entry_ids", "kept"]
        );
        for (f, (c, _, _)) in s.fields().iter().zip(candidates::COLUMNS) {
            assert_eq!(f.name(), c);
        }
    }
}
