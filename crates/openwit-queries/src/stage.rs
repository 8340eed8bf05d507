//! The `queries` stage: tasks count Wikipedia (one per multistream stream range or per file) and
//! sum pageviews (one per file); `reduce` merges the count tables, reads WordNet, selects and
//! merges the entries and writes the outputs.
//!
//! Outputs in `WORKDIR/queries/`: `metadata.json`, `queries.parquet`, `unigram.parquet`,
//! `bigram.parquet`, `summary.json`, and per task `counts/<task>.uni.cnt` (a sorted count file)
//! with `counts/<task>.bi.cnt` (its bigrams as pairs of indexes into that file, see
//! [`crate::pairs`]) or `views/<task>.cnt`.
//!
//! The merged count tables are also kept in `WORKDIR/.cache/queries/<key>/`, keyed by what
//! the counts depend on (the Wikipedia files, namespaces, page size limit, the cleaning and
//! tokenizing rules), so that `--restart queries` with another threshold does not recount.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use openwit_core::artifact::{OneFile, QueryList};
use openwit_core::{
    Drops, Stage, StageContext, TaskContext, TaskRecord, TaskReport, TaskSpec, stage::sanitize,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2_free::{short_hash, short_hash_bytes};

use crate::config::QueriesConfig;
use crate::counts::{
    CountReader, CountWriter, Counter, FxMap, Ranks, SortedCounts, key_str, merge, merge_tracked,
};
use crate::dump::{self, DumpKind, DumpStats, PageCounter};
use crate::error::{QueriesError, Result};
use crate::pairs::PairReader;
use crate::select::{self, BigramPicker, Entry, Source};
use crate::tables::{self, CountTableWriter};
use crate::vocab::Vocab;

/// Bumped when cleaning or tokenizing changes what is counted (invalidates cached tables).
pub const COUNT_VERSION: u32 = 2;

const MIB: u64 = 1 << 20;

/// Self-contained stable hashing (FNV-1a 64, twice with different seeds) for cache keys.
mod sha2_free {
    pub fn short_hash(s: &str) -> String {
        short_hash_bytes(s.as_bytes())
    }
    pub fn short_hash_bytes(bytes: &[u8]) -> String {
        let mut a: u64 = 0xcbf2_9ce4_8422_2325;
        let mut b: u64 = 0x8422_2325_cbf2_9ce4;
        for &c in bytes {
            a = (a ^ u64::from(c)).wrapping_mul(0x0000_0100_0000_01b3);
            b = (b ^ u64::from(c))
                .wrapping_mul(0x0000_0100_0000_01b3)
                .rotate_left(7);
        }
        format!("{a:016x}{b:016x}")
    }
}

/// One task's work.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Work {
    /// Streams of a multistream dump: `(offset, pages)` each, the last one ending at `end`.
    WikiStreams {
        path: PathBuf,
        streams: Vec<(u64, u64)>,
        end: u64,
    },
    /// A whole dump file, streamed.
    WikiFile { path: PathBuf, format: DumpKind },
    /// A pageview file.
    Pageviews { path: PathBuf },
}

/// The queries stage, built from its config.
pub struct QueriesStage {
    cfg: QueriesConfig,
    base: PathBuf,
    net: crate::download::Net,
}

impl QueriesStage {
    /// Builds the stage; relative paths in `cfg` are resolved against `base` (the pipeline file's
    /// folder).
    pub fn new(cfg: QueriesConfig, base: &Path) -> openwit_core::Result<Self> {
        cfg.validate().map_err(openwit_core::Error::Config)?;
        Ok(QueriesStage {
            cfg,
            base: base.to_path_buf(),
            net: Default::default(),
        })
    }

    /// Allows URL sources on private, loopback and link-local addresses (the pipeline's
    /// `allow_private_networks`).
    pub fn allow_private_networks(mut self, allow: bool) -> Self {
        self.net.allow_private = allow;
        self
    }

    /// Downloads URL sources through this proxy (`[pipeline] proxy`; names are still checked
    /// here first, see `openwit_http`).
    pub fn proxy(mut self, proxy: Option<String>) -> Self {
        self.net.proxy = proxy;
        self
    }

    pub fn config_ref(&self) -> &QueriesConfig {
        &self.cfg
    }

    fn is_url(s: &str) -> bool {
        s.starts_with("http://") || s.starts_with("https://")
    }

    /// Resolves one input to local paths (downloading URLs), expanding folders with `keep`.
    fn resolve(
        &self,
        workdir: &Path,
        input: &str,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<PathBuf>> {
        if Self::is_url(input) {
            let dir = workdir.join("downloads");
            let p = crate::download::fetch(input, &dir, &self.net)?;
            return Ok(vec![p]);
        }
        let p = self.base.join(input);
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(&p)
                .map_err(|e| QueriesError::io(&p, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|q| {
                    q.is_file()
                        && q.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| !n.starts_with('.') && keep(n))
                })
                .collect();
            v.sort();
            if v.is_empty() {
                return Err(QueriesError::Config(format!(
                    "{}: the folder has no input files of the expected kind",
                    p.display()
                )));
            }
            return Ok(v);
        }
        if !p.is_file() {
            return Err(QueriesError::Config(format!(
                "{}: no such file or folder (from `{input}` in [queries]; relative paths are \
                 relative to the pipeline file's folder)",
                p.display()
            )));
        }
        Ok(vec![p])
    }

    fn wiki_files(&self, workdir: &Path) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for w in &self.cfg.wikipedia {
            let keep =
                |n: &str| (n.ends_with(".xml") || n.ends_with(".xml.bz2")) && !n.contains("-index");
            out.extend(self.resolve(workdir, w, &keep)?);
            if Self::is_url(w) && w.contains("multistream") && w.ends_with(".xml.bz2") {
                // The index of a multistream dump URL sits beside it.
                let idx = format!("{}-index.txt.bz2", w.trim_end_matches(".xml.bz2"));
                self.resolve(workdir, &idx, &keep)?;
            }
        }
        Ok(out)
    }

    fn pageview_files(&self, workdir: &Path) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for w in &self.cfg.pageviews {
            out.extend(self.resolve(workdir, w, &|n: &str| n.starts_with("pageviews-"))?);
        }
        Ok(out)
    }

    fn wordnet_paths(&self) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for w in &self.cfg.wordnet {
            let p = self.base.join(w);
            if !p.exists() {
                return Err(QueriesError::Config(format!(
                    "{}: no such WordNet folder or file (from `{w}` in [queries]); on Debian, \
                     `apt-get install wordnet-base` installs /usr/share/wordnet",
                    p.display()
                )));
            }
            out.push(p);
        }
        Ok(out)
    }

    /// The key of the cached count tables: everything the counts depend on. Files are known by
    /// name, length and a hash of their first and last MiB (not their path or mtime), so a copy
    /// of the same dump elsewhere finds the same tables.
    fn count_key(&self, files: &[PathBuf]) -> Result<String> {
        use std::io::{Read, Seek, SeekFrom};
        let mut desc = format!(
            "v{COUNT_VERSION};ns={:?};max_page={}",
            self.cfg.namespaces, self.cfg.max_page_mb
        );
        for f in files {
            let io = |e| QueriesError::io(f, e);
            let mut file = std::fs::File::open(f).map_err(io)?;
            let len = file.metadata().map_err(io)?.len();
            let mut head = Vec::new();
            (&mut file).take(MIB).read_to_end(&mut head).map_err(io)?;
            let mut tail = Vec::new();
            file.seek(SeekFrom::Start(len.saturating_sub(MIB)))
                .map_err(io)?;
            file.take(MIB).read_to_end(&mut tail).map_err(io)?;
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            desc.push_str(&format!(
                ";{name}:{len}:{}:{}",
                short_hash_bytes(&head),
                short_hash_bytes(&tail)
            ));
        }
        Ok(short_hash(&desc))
    }

    fn cache_dir(workdir: &Path, key: &str) -> PathBuf {
        workdir.join(".cache").join("queries").join(key)
    }

    fn task_budget(&self, jobs: usize) -> usize {
        let total = self.cfg.memory_budget_mb * MIB as f64;
        let per = total / self.max_parallel(jobs).max(1) as f64;
        // A quarter is left for page buffers and the decoder.
        (per * 0.75) as usize
    }

    /// Blocks a task's bzip2 decoder chases at once: each costs ~5 MiB (its BWT vector on 2 MiB
    /// pages and its output), paid from the quarter of the task's memory that
    /// [`Self::task_budget`] leaves out; at most [`crate::bz2::LANES`], at least 2.
    fn bz2_lanes(&self, jobs: usize) -> usize {
        let total = self.cfg.memory_budget_mb * MIB as f64;
        let spare = total / self.max_parallel(jobs).max(1) as f64 * 0.25;
        ((spare / (6.0 * MIB as f64)) as usize).clamp(2, crate::bz2::LANES)
    }

    fn plan_inner(&self, workdir: &Path) -> Result<Vec<TaskSpec>> {
        let mut tasks = Vec::new();
        let wiki = self.wiki_files(workdir)?;
        let key = self.count_key(&wiki)?;
        let task_bytes = ((self.cfg.task_size_mb * MIB as f64) as u64).max(1);
        for (i, path) in wiki.iter().enumerate() {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let kind = dump::sniff(path)?;
            let len = std::fs::metadata(path)
                .map_err(|e| QueriesError::io(path, e))?
                .len();
            let index = if kind == DumpKind::Bzip2 {
                dump::index_for(path)
            } else {
                None
            };
            match index {
                Some(idx_path) => {
                    let idx = dump::read_index(&idx_path)?;
                    if let Some(&last) = idx.offsets.last()
                        && last >= len
                    {
                        return Err(QueriesError::Broken {
                                path: path.clone(),
                                offset: len,
                                msg: format!(
                                    "the file ends at byte {len} but its index {} lists a stream at byte {last}",
                                    idx_path.display()
                                ),
                                fix: "the dump is truncated: download it again (or give the index of this dump)".into(),
                            });
                    }
                    // Group consecutive streams into ranges of about `task_bytes`.
                    let mut start = 0usize;
                    while start < idx.offsets.len() {
                        let first = idx.offsets[start];
                        let mut end = start + 1;
                        while end < idx.offsets.len() && idx.offsets[end] - first < task_bytes {
                            end += 1;
                        }
                        let range_end = idx.offsets.get(end).copied().unwrap_or(len);
                        let streams: Vec<(u64, u64)> = (start..end)
                            .map(|j| (idx.offsets[j], idx.pages[j]))
                            .collect();
                        let work = Work::WikiStreams {
                            path: path.clone(),
                            streams,
                            end: range_end,
                        };
                        tasks.push(TaskSpec::new(
                            format!("wiki-{i:03}-{name}@{first:012}"),
                            json!({"key": key, "work": work}),
                        ));
                        start = end;
                    }
                    // Bytes before the first indexed stream hold only the siteinfo header.
                }
                None => {
                    let work = Work::WikiFile {
                        path: path.clone(),
                        format: kind,
                    };
                    tasks.push(TaskSpec::new(
                        format!("wiki-{i:03}-{name}"),
                        json!({"key": key, "work": work}),
                    ));
                }
            }
        }
        for (i, path) in self.pageview_files(workdir)?.iter().enumerate() {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            tasks.push(TaskSpec::new(
                format!("pv-{i:04}-{name}"),
                json!({"work": Work::Pageviews { path: path.clone() }}),
            ));
        }
        self.wordnet_paths()?;
        Ok(tasks)
    }

    fn run_wiki(&self, ctx: &TaskContext<'_>, task: &TaskSpec, work: &Work) -> Result<TaskReport> {
        let key = task.payload["key"].as_str().unwrap_or_default();
        if Self::cache_dir(ctx.workdir, key)
            .join("complete.json")
            .is_file()
        {
            // The merged tables of these exact inputs exist: nothing to count.
            return Ok(TaskReport {
                extra: json!({"cached": true}),
                ..Default::default()
            });
        }
        let scratch = ctx.scratch_dir()?;
        let mut counter = Counter::new(self.task_budget(ctx.jobs()), &scratch.join("spill"));
        let mut stats = DumpStats::default();
        let cancel = || ctx.cancelled();
        let progress = |n: u64| ctx.progress(n);
        let mut pc = PageCounter {
            counter: &mut counter,
            stats: &mut stats,
            namespaces: &self.cfg.namespaces,
            max_page: usize::try_from(self.cfg.max_page_mb * MIB).unwrap_or(usize::MAX),
            bz2_lanes: self.bz2_lanes(ctx.jobs()),
            cancel: &cancel,
            progress: &progress,
        };
        match work {
            Work::WikiStreams { path, streams, end } => {
                dump::count_streams(path, streams, *end, &mut pc)?
            }
            Work::WikiFile { path, format } => dump::count_file(path, *format, &mut pc)?,
            Work::Pageviews { .. } => unreachable!("not a wiki task"),
        }
        let spills = counter.spills();
        let id = sanitize(&task.id);
        let uni = ctx.output_path(&format!("counts/{id}.uni.cnt"))?;
        let bi = ctx.output_path(&format!("counts/{id}.bi.cnt"))?;
        let (n_uni, n_bi) = counter.finish(&uni, &bi)?;
        tracing::info!(task = %task.id, pages = stats.pages, tokens = stats.tokens, unigrams = n_uni, bigrams = n_bi, spills, "counted");
        Ok(TaskReport {
            items_in: stats.pages,
            items_out: stats.articles,
            drops: stats.drops.clone(),
            extra: json!({"dump": stats, "unigram_types": n_uni, "bigram_types": n_bi, "spills": spills}),
        })
    }

    fn run_pageviews(
        &self,
        ctx: &TaskContext<'_>,
        task: &TaskSpec,
        path: &Path,
    ) -> Result<TaskReport> {
        let mut drops = Drops::default();
        let (sums, lines) =
            crate::pageviews::read_file(path, self.cfg.title_min_hourly_views, &mut drops)?;
        let out = ctx.output_path(&format!("views/{}.cnt", sanitize(&task.id)))?;
        let mut w = CountWriter::create(&out)?;
        for (t, c) in &sums {
            w.push(t, *c)?;
        }
        w.finish()?;
        ctx.progress(lines);
        Ok(TaskReport {
            items_in: lines,
            items_out: sums.len() as u64,
            drops,
            extra: json!({"pageview_lines": lines}),
        })
    }

    /// Merges the tasks' count files into the cached tables (or finds them cached).
    fn count_tables(
        &self,
        ctx: &TaskContext<'_>,
        tasks: &[TaskRecord],
        key: &str,
        scorer: &mut WikiScorer<'_>,
    ) -> Result<(PathBuf, PathBuf, Value)> {
        let cache = Self::cache_dir(ctx.workdir, key);
        let complete = cache.join("complete.json");
        let uni = cache.join("unigram.parquet");
        let bi = cache.join("bigram.parquet");
        if complete.is_file() && uni.is_file() && bi.is_file() {
            let text =
                std::fs::read_to_string(&complete).map_err(|e| QueriesError::io(&complete, e))?;
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            tracing::info!(cache = %cache.display(), "reusing the count tables of an earlier run");
            tables::read_counts(&uni, |k, c| {
                scorer.unigram(k, c);
                Ok(())
            })?;
            tables::read_counts(&bi, |k, c| {
                scorer.bigram(k, c);
                Ok(())
            })?;
            return Ok((uni, bi, v));
        }
        std::fs::create_dir_all(&cache).map_err(|e| QueriesError::io(&cache, e))?;
        // Each task's unigram file and the bigram pair file that refers to it.
        let mut files = Vec::new();
        let mut total = DumpStats::default();
        for t in tasks.iter().filter(|t| t.task.starts_with("wiki-")) {
            let find = |ext: &str| t.outputs.iter().find(|o| o.ends_with(ext));
            if let (Some(u), Some(b)) = (find(".uni.cnt"), find(".bi.cnt")) {
                files.push((ctx.workdir.join(u), ctx.workdir.join(b)));
            }
            if let Some(d) = t.extra.get("dump")
                && let Ok(s) = serde_json::from_value::<DumpStats>(d.clone())
            {
                add_stats(&mut total, &s);
            }
        }
        let (tokens, n_uni, n_bi) = merge_wiki_counts(&files, &uni, &bi, scorer)?;
        let v =
            json!({"dump": total, "tokens": tokens, "unigram_types": n_uni, "bigram_types": n_bi});
        let mut f = openwit_core::atomic::AtomicFile::create(&complete)?;
        f.write_all(
            serde_json::to_string_pretty(&v)
                .unwrap_or_default()
                .as_bytes(),
        )
        .map_err(|e| QueriesError::io(&complete, e))?;
        f.commit()?;
        Ok((uni, bi, v))
    }

    fn reduce_inner(&self, ctx: &TaskContext<'_>, tasks: &[TaskRecord]) -> Result<TaskReport> {
        let cfg = &self.cfg;
        let mut summary = json!({});
        // Drops: pageview tasks from their reports, Wikipedia from the count tables' stats
        // (which a cached run reuses).
        let mut drops = Drops::default();
        for t in tasks.iter().filter(|t| t.task.starts_with("pv-")) {
            for (k, v) in &t.drops {
                drops.add(k, *v);
            }
        }
        // Wikipedia: unigrams and bigrams.
        let key = tasks.iter().find_map(|t| {
            t.payload
                .get("key")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        let (mut unigrams, mut bigrams) = (Vec::new(), Vec::new());
        if let Some(key) = key {
            let mut scorer = WikiScorer::new(cfg);
            let (uni, bi, stats) = self.count_tables(ctx, tasks, &key, &mut scorer)?;
            if let Some(d) = stats.get("dump")
                && let Ok(s) = serde_json::from_value::<DumpStats>(d.clone())
            {
                drops.merge(&s.drops);
            }
            summary["wikipedia"] = stats;
            link_or_copy(&uni, &ctx.output_path("unigram.parquet")?)?;
            link_or_copy(&bi, &ctx.output_path("bigram.parquet")?)?;
            let WikiScorer {
                n,
                words,
                picker,
                scored,
                ..
            } = scorer;
            for (k, &c) in &words {
                if c >= cfg.unigram_min_count {
                    let mut e = Entry::new(k.to_string(), Source::WikiUnigram);
                    e.count = Some(c);
                    unigrams.push(e);
                }
            }
            // Most frequent first (ties by byte order) so that the cap keeps the common words.
            unigrams.sort_by(|a, b| {
                b.count
                    .cmp(&a.count)
                    .then_with(|| a.entry.as_bytes().cmp(b.entry.as_bytes()))
            });
            summary["bigrams_scored"] = json!(scored);
            summary["tokens"] = json!(n);
            bigrams = picker
                .finish()
                .into_iter()
                .map(|b| Entry {
                    entry: b.entry,
                    source: Source::WikiBigram,
                    count: Some(b.count),
                    pmi: Some(b.pmi),
                    views: None,
                })
                .collect();
        }
        // Titles.
        let view_files: Vec<PathBuf> = tasks
            .iter()
            .filter(|t| t.task.starts_with("pv-"))
            .flat_map(|t| t.outputs.iter().map(|o| ctx.workdir.join(o)))
            .collect();
        let mut titles = Vec::new();
        if !view_files.is_empty() {
            let sources: Vec<Box<dyn SortedCounts>> = view_files
                .iter()
                .map(|p| CountReader::open(p).map(|r| Box::new(r) as Box<dyn SortedCounts>))
                .collect::<Result<_>>()?;
            let mut counted = 0u64;
            merge(sources, |t, c| {
                let t = key_str(t, &view_files[0])?;
                counted += 1;
                if c >= cfg.title_min_views {
                    let mut e = Entry::new(t, Source::WikiTitle);
                    e.views = Some(c);
                    titles.push(e);
                }
                Ok(())
            })?;
            titles.sort_by(|a, b| {
                b.views
                    .cmp(&a.views)
                    .then_with(|| a.entry.as_bytes().cmp(b.entry.as_bytes()))
            });
            summary["titles_counted"] = json!(counted);
        }
        // WordNet.
        let mut wordnet = Vec::new();
        let mut synsets = 0u64;
        for p in self.wordnet_paths()? {
            let s = crate::wordnet::read_source(&p)?;
            synsets += s.len() as u64;
            wordnet.extend(s.iter().map(|s| s.entry()));
        }
        summary["wordnet_synsets"] = json!(synsets);
        let (entries, mstats) = select::merge(wordnet, unigrams, bigrams, titles, cfg.max_entries);
        let mut by_source = BTreeMap::new();
        for s in Source::ALL {
            by_source.insert(s.as_str().to_string(), 0u64);
        }
        for e in &entries {
            *by_source.entry(e.source.as_str().to_string()).or_insert(0) += 1;
        }
        summary["entries"] = json!(entries.len());
        summary["entries_by_source"] = json!(by_source);
        summary["merge"] = json!(mstats);
        summary["drops"] = json!(drops.0);
        // Outputs.
        let meta = ctx.output_path(QueryList::FILE)?;
        let list: Vec<&str> = entries.iter().map(|e| e.entry.as_str()).collect();
        let bytes = serde_json::to_vec(&list).unwrap_or_default();
        std::fs::write(&meta, bytes).map_err(|e| QueriesError::io(&meta, e))?;
        tables::write_queries(&ctx.output_path("queries.parquet")?, &entries)?;
        let sp = ctx.output_path("summary.json")?;
        let text = serde_json::to_string_pretty(&summary).unwrap_or_default() + "\n";
        std::fs::write(&sp, text).map_err(|e| QueriesError::io(&sp, e))?;
        Ok(TaskReport {
            items_in: mstats.offered.values().sum(),
            items_out: entries.len() as u64,
            drops: Drops::default(),
            extra: summary,
        })
    }
}

fn add_stats(t: &mut DumpStats, s: &DumpStats) {
    t.pages += s.pages;
    t.articles += s.articles;
    t.redirects += s.redirects;
    t.other_namespace += s.other_namespace;
    t.bytes_in += s.bytes_in;
    t.bytes_xml += s.bytes_xml;
    t.bytes_text += s.bytes_text;
    t.tokens += s.tokens;
    t.bigrams += s.bigrams;
    t.drops.merge(&s.drops);
}

/// Merges the tasks' count files into `unigram.parquet` and `bigram.parquet` (each written
/// under a temporary name and renamed), scoring the rows as they go by: the unigrams first (N
/// and the words' counts), then the bigrams (no second read of either table). Returns N and the
/// rows of each table.
///
/// The unigram merge records where each task's word lands in the merged list (an increasing
/// map), so each task's bigram pairs (see [`crate::pairs`]) map to merged word indexes in the
/// same order, and the bigram merge runs on integer keys.
fn merge_wiki_counts(
    files: &[(PathBuf, PathBuf)],
    uni_out: &Path,
    bi_out: &Path,
    scorer: &mut WikiScorer<'_>,
) -> Result<(u64, u64, u64)> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    let what = files.first().map(|f| f.0.as_path()).unwrap_or(uni_out);
    // The merged words twice: as bytes for their order (`Ranks`), and as one validated text
    // with each word's end and count side by side (one cache line per word for the bigram rows).
    let mut words = Vocab::default();
    let mut text_all = String::new();
    let mut info: Vec<(usize, u64)> = Vec::new();
    let mut maps: Vec<Vec<u32>> = vec![Vec::new(); files.len()];
    let tmp = openwit_core::atomic::temp_path_for(uni_out);
    let mut w = CountTableWriter::create(&tmp, "token")?;
    let sources: Vec<Box<dyn SortedCounts>> = files
        .iter()
        .map(|(u, _)| CountReader::open(u).map(|r| Box::new(r) as Box<dyn SortedCounts>))
        .collect::<Result<_>>()?;
    let mut tokens = 0u64;
    merge_tracked(sources, |k, c, from| {
        let k = key_str(k, what)?;
        let g = info.len() as u32;
        for &t in from {
            maps[t].push(g);
        }
        words.push(k.as_bytes());
        text_all.push_str(k);
        info.push((text_all.len(), c));
        tokens += c;
        scorer.unigram(k, c);
        w.push(k, c)
    })?;
    let n_uni = w.finish()?;
    std::fs::rename(&tmp, uni_out).map_err(|e| QueriesError::io(uni_out, e))?;

    // Bigram keys sort by the first word's `w + " "` order, then the second word's byte order
    // (the merged index).
    let rank1 = Ranks::new(&words).rank1;
    let tmp = openwit_core::atomic::temp_path_for(bi_out);
    let mut w = CountTableWriter::create(&tmp, "bigram")?;
    let mut feeds = Vec::with_capacity(files.len());
    for (t, (_, b)) in files.iter().enumerate() {
        feeds.push(PairFeed::open(b, &maps[t], &rank1)?);
    }
    let mut heap = BinaryHeap::new();
    for (t, f) in feeds.iter_mut().enumerate() {
        if let Some(&(k, ..)) = f.head()? {
            heap.push(Reverse((k, t)));
        }
    }
    let mut rows = RowBatch::new(&text_all, &info);
    let mut cur: Option<(u64, u32, u64)> = None;
    while let Some(&Reverse((k, t))) = heap.peek() {
        let f = &mut feeds[t];
        let Some(&(_, a, c)) = f.head()? else {
            // (Not reached: a feed is in the heap only while it has a record.)
            heap.pop();
            continue;
        };
        match &mut cur {
            Some((ck, _, cc)) if *ck == k => *cc += c,
            _ => {
                if let Some(x) = cur.take() {
                    rows.push(x, &mut w, scorer)?;
                }
                cur = Some((k, a, c));
            }
        }
        f.pos += 1;
        if let Some(&(next, ..)) = f.head()? {
            // Replace the top: one sift instead of a pop and a push.
            if let Some(mut top) = heap.peek_mut() {
                *top = Reverse((next, t));
            }
        } else {
            heap.pop();
        }
    }
    if let Some(x) = cur {
        rows.push(x, &mut w, scorer)?;
    }
    rows.flush(&mut w, scorer)?;
    let n_bi = w.finish()?;
    std::fs::rename(&tmp, bi_out).map_err(|e| QueriesError::io(bi_out, e))?;
    Ok((tokens, n_uni, n_bi))
}

/// Records a [`PairFeed`] reads and maps at a time.
const FEED_CHUNK: usize = 1024;

/// One task's bigram pairs, read a chunk at a time and mapped to merged keys (`rank1` of the
/// first word's merged index `<< 32 |` the second's) in one loop: the chunk's map lookups do not
/// depend on each other, so their cache misses overlap instead of stalling the merge one by one.
struct PairFeed<'a> {
    r: PairReader,
    map: &'a [u32],
    rank1: &'a [u32],
    raw: Vec<(u32, u32, u64)>,
    /// `(key, first word's merged index, count)`, in key order.
    keys: Vec<(u64, u32, u64)>,
    pos: usize,
    last: Option<u64>,
    done: bool,
}

impl<'a> PairFeed<'a> {
    fn open(path: &Path, map: &'a [u32], rank1: &'a [u32]) -> Result<Self> {
        Ok(PairFeed {
            r: PairReader::open(path, map.len() as u64)?,
            map,
            rank1,
            raw: Vec::with_capacity(FEED_CHUNK),
            keys: Vec::with_capacity(FEED_CHUNK),
            pos: 0,
            last: None,
            done: false,
        })
    }

    /// The current record; `None` at the end.
    #[inline]
    fn head(&mut self) -> Result<Option<&(u64, u32, u64)>> {
        if self.pos == self.keys.len() && !self.done {
            self.refill()?;
        }
        Ok(self.keys.get(self.pos))
    }

    fn refill(&mut self) -> Result<()> {
        self.raw.clear();
        while self.raw.len() < FEED_CHUNK {
            if !self.r.advance()? {
                self.done = true;
                break;
            }
            self.raw.push((self.r.a, self.r.b, self.r.count));
        }
        let (map, rank1) = (self.map, self.rank1);
        self.keys.clear();
        self.keys.extend(self.raw.iter().map(|&(a, b, c)| {
            let (a, b) = (map[a as usize], map[b as usize]);
            (u64::from(rank1[a as usize]) << 32 | u64::from(b), a, c)
        }));
        self.pos = 0;
        for &(k, ..) in &self.keys {
            if self.last.is_some_and(|l| k <= l) {
                return Err(self.r.broken("bigram pairs out of order"));
            }
            self.last = Some(k);
        }
        Ok(())
    }
}

/// Merged bigram rows `(key, first word, count)` waiting for their text: looked up a batch at
/// a time (the words' spans first, in a loop of independent loads, then the text), scored and
/// written.
struct RowBatch<'a> {
    text: &'a str,
    /// Each merged word's end in `text` and its count.
    info: &'a [(usize, u64)],
    rows: Vec<(u64, u32, u64)>,
    spans: Vec<[(usize, usize, u64); 2]>,
    key: String,
}

const ROW_BATCH: usize = 4096;

impl<'a> RowBatch<'a> {
    fn new(text: &'a str, info: &'a [(usize, u64)]) -> Self {
        RowBatch {
            text,
            info,
            rows: Vec::with_capacity(ROW_BATCH),
            spans: Vec::with_capacity(ROW_BATCH),
            key: String::with_capacity(64),
        }
    }

    #[inline]
    fn push(
        &mut self,
        row: (u64, u32, u64),
        w: &mut CountTableWriter,
        scorer: &mut WikiScorer<'_>,
    ) -> Result<()> {
        self.rows.push(row);
        if self.rows.len() == ROW_BATCH {
            self.flush(w, scorer)?;
        }
        Ok(())
    }

    fn flush(&mut self, w: &mut CountTableWriter, scorer: &mut WikiScorer<'_>) -> Result<()> {
        let info = self.info;
        let span = |g: usize| {
            let start = if g == 0 { 0 } else { info[g - 1].0 };
            (start, info[g].0, info[g].1)
        };
        self.spans.clear();
        self.spans.extend(
            self.rows
                .iter()
                .map(|&(k, a, _)| [span(a as usize), span((k & 0xffff_ffff) as usize)]),
        );
        for (&(_, _, c), [(sa, ea, na), (sb, eb, nb)]) in self.rows.iter().zip(&self.spans) {
            self.key.clear();
            self.key.push_str(&self.text[*sa..*ea]);
            self.key.push(' ');
            self.key.push_str(&self.text[*sb..*eb]);
            scorer.bigram_counts(&self.key, c, *na, *nb);
            w.push(&self.key, c)?;
        }
        self.rows.clear();
        Ok(())
    }
}

fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    let _ = std::fs::remove_file(to);
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).map_err(|e| QueriesError::io(to, e))?;
    }
    Ok(())
}

impl openwit_core::FromConfig for QueriesStage {
    const TABLE: &'static str = "queries";
    type Config = QueriesConfig;
    fn from_config(
        cfg: QueriesConfig,
        doc: &openwit_core::PipelineDoc,
    ) -> openwit_core::Result<Self> {
        Ok(Self::new(cfg, &doc.base_dir())?
            .allow_private_networks(doc.pipeline().allow_private_networks)
            .proxy(doc.pipeline().proxy.clone()))
    }
}

impl Stage for QueriesStage {
    fn name(&self) -> &str {
        "queries"
    }

    fn config(&self) -> Value {
        let mut v = serde_json::to_value(&self.cfg).unwrap_or(Value::Null);
        if let Some(m) = v.as_object_mut() {
            // Memory does not change the outputs.
            m.remove("memory_budget_mb");
            m.insert("count_version".into(), json!(COUNT_VERSION));
        }
        v
    }

    fn plan(&self, ctx: &StageContext<'_>) -> openwit_core::Result<Vec<TaskSpec>> {
        Ok(self.plan_inner(ctx.workdir)?)
    }

    fn run_task(&self, ctx: &TaskContext<'_>, task: &TaskSpec) -> openwit_core::Result<TaskReport> {
        let work: Work = serde_json::from_value(task.payload["work"].clone()).map_err(|e| {
            openwit_core::Error::Stage(format!("task {}: bad payload: {e}", task.id))
        })?;
        let r = match &work {
            Work::Pageviews { path } => self.run_pageviews(ctx, task, path),
            _ => self.run_wiki(ctx, task, &work),
        };
        Ok(r?)
    }

    fn reduce(
        &self,
        ctx: &TaskContext<'_>,
        tasks: &[TaskRecord],
    ) -> openwit_core::Result<Option<TaskReport>> {
        Ok(Some(self.reduce_inner(ctx, tasks)?))
    }

    fn summary(&self, ctx: &StageContext<'_>, _tasks: &[TaskRecord]) -> Option<String> {
        let p = ctx.stage_dir().join("summary.json");
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).ok()?).ok()?;
        Some(format_summary(&v, &ctx.stage_dir()))
    }
}

/// The summary printed by `openwit queries`.
pub fn format_summary(v: &Value, dir: &Path) -> String {
    let n = |x: &Value| x.as_u64().unwrap_or(0);
    let mut s = String::new();
    let by: Vec<String> = v["entries_by_source"]
        .as_object()
        .map(|m| {
            Source::ALL
                .iter()
                .map(|src| format!("{} {}", src.as_str(), n(&m[src.as_str()])))
                .collect()
        })
        .unwrap_or_default();
    s.push_str(&format!(
        "queries: {} entries ({})\n",
        n(&v["entries"]),
        by.join(", ")
    ));
    if v.get("wikipedia").is_some() {
        let d = &v["wikipedia"]["dump"];
        s.push_str(&format!(
            "  wikipedia: {} pages ({} articles, {} redirects, {} in other namespaces), {} tokens (N), {} distinct tokens, {} distinct bigrams, {} bigrams scored\n",
            n(&d["pages"]),
            n(&d["articles"]),
            n(&d["redirects"]),
            n(&d["other_namespace"]),
            n(&v["tokens"]),
            n(&v["wikipedia"]["unigram_types"]),
            n(&v["wikipedia"]["bigram_types"]),
            n(&v["bigrams_scored"]),
        ));
    }
    if v.get("titles_counted").is_some() {
        s.push_str(&format!(
            "  pageviews: {} titles counted\n",
            n(&v["titles_counted"])
        ));
    }
    s.push_str(&format!(
        "  wordnet: {} synsets\n",
        n(&v["wordnet_synsets"])
    ));
    if let Some(d) = v["drops"].as_object().filter(|d| !d.is_empty()) {
        let parts: Vec<String> = d.iter().map(|(k, c)| format!("{k} {}", n(c))).collect();
        s.push_str(&format!("  dropped: {}\n", parts.join(", ")));
    }
    s.push_str(&format!(
        "  outputs: {}/{{metadata.json, queries.parquet, unigram.parquet, bigram.parquet, summary.json}}",
        dir.display()
    ));
    s
}

/// What the reduce keeps of the Wikipedia counts as they stream by: N, the words that can be
/// entries or bigram parts, and the bigrams picked by PMI.
struct WikiScorer<'c> {
    cfg: &'c QueriesConfig,
    word_min: u64,
    keep_min: u64,
    n: u64,
    words: FxMap<Box<str>, u64>,
    picker: BigramPicker,
    scored: u64,
    /// The first word of the last bigram and its count (bigrams come sorted, so the first word
    /// repeats).
    last_a: String,
    last_na: Option<u64>,
}

impl<'c> WikiScorer<'c> {
    fn new(cfg: &'c QueriesConfig) -> Self {
        let word_min = cfg.bigram_word_min();
        WikiScorer {
            cfg,
            word_min,
            keep_min: word_min.min(cfg.unigram_min_count),
            n: 0,
            words: FxMap::default(),
            picker: BigramPicker::new(cfg),
            scored: 0,
            last_a: String::new(),
            last_na: None,
        }
    }

    /// One unigram row (all of them come before the bigrams).
    fn unigram(&mut self, k: &str, c: u64) {
        self.n += c;
        if c >= self.keep_min {
            self.words.insert(k.into(), c);
        }
    }

    /// One bigram row of a cached table: its words' counts looked up, then scored.
    fn bigram(&mut self, k: &str, c: u64) {
        if c < self.cfg.bigram_min_count {
            return;
        }
        let Some((a, b)) = k.split_once(' ') else {
            return;
        };
        if a != self.last_a {
            self.last_a.clear();
            self.last_a.push_str(a);
            self.last_na = self.words.get(a).copied();
        }
        let (Some(na), Some(&nb)) = (self.last_na, self.words.get(b)) else {
            return;
        };
        self.bigram_counts(k, c, na, nb);
    }

    /// One bigram row whose words' counts are `na` and `nb`: scored when both words are
    /// frequent enough.
    fn bigram_counts(&mut self, k: &str, c: u64, na: u64, nb: u64) {
        if c < self.cfg.bigram_min_count || na < self.word_min || nb < self.word_min {
            return;
        }
        self.scored += 1;
        self.picker
            .offer_parts(k, c, select::pmi(c, na, nb, self.n));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Tasks with overlapping vocabularies (words that sort differently as `w` and `w + " "`
    /// among them, one task spilled): the merged tables equal a count of all texts together.
    #[test]
    fn merged_tables_equal_one_count_of_everything() {
        let dir = tempfile::tempdir().unwrap();
        let words = ["a", "a\u{1}", "ab", "b", "a\u{1f}x", "Z", "é", "dog", "do"];
        let mut state = 7u64;
        let mut text = |n: usize| -> String {
            let mut s = String::new();
            for i in 0..n {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                s.push_str(words[state as usize % words.len()]);
                s.push(if i % 9 == 8 { '\n' } else { ' ' });
            }
            s
        };
        let texts: Vec<String> = (0..3).map(|i| text(200 + 150 * i)).collect();
        let mut files = Vec::new();
        for (t, s) in texts.iter().enumerate() {
            // The second task spills on every text.
            let budget = if t == 1 { 0 } else { usize::MAX };
            let mut c = Counter::new(budget, &dir.path().join(format!("spill{t}")));
            for line in s.split_inclusive('\n') {
                c.count_text(line).unwrap();
            }
            let (u, b) = (
                dir.path().join(format!("{t}.uni.cnt")),
                dir.path().join(format!("{t}.bi.cnt")),
            );
            c.finish(&u, &b).unwrap();
            files.push((u, b));
        }
        let mut all = Counter::new(usize::MAX, &dir.path().join("spill-all"));
        for s in &texts {
            for line in s.split_inclusive('\n') {
                all.count_text(line).unwrap();
            }
        }
        let (u, b) = (
            dir.path().join("all.uni.cnt"),
            dir.path().join("all.bi.cnt"),
        );
        all.finish(&u, &b).unwrap();
        let cfg = QueriesConfig::default();
        let (uo, bo) = (dir.path().join("u.parquet"), dir.path().join("b.parquet"));
        let mut scorer = WikiScorer::new(&cfg);
        let (n, _, n_bi) = merge_wiki_counts(&files, &uo, &bo, &mut scorer).unwrap();
        let (ua, ba) = (dir.path().join("ua.parquet"), dir.path().join("ba.parquet"));
        let mut scorer = WikiScorer::new(&cfg);
        let (n_all, _, _) = merge_wiki_counts(&[(u, b)], &ua, &ba, &mut scorer).unwrap();
        assert_eq!(n, n_all);
        let read = |p: &Path| {
            let mut v: Vec<(String, u64)> = Vec::new();
            tables::read_counts(p, |k, c| {
                v.push((k.to_string(), c));
                Ok(())
            })
            .unwrap();
            v
        };
        assert_eq!(read(&uo), read(&ua));
        let got = read(&bo);
        assert_eq!(got, read(&ba));
        assert_eq!(got.len() as u64, n_bi);
        // The reference: bigrams within lines, keys in byte order.
        let mut want: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        for s in &texts {
            for line in s.lines() {
                let w: Vec<&str> = line.split(' ').filter(|x| !x.is_empty()).collect();
                for p in w.windows(2) {
                    *want
                        .entry(format!("{} {}", p[0], p[1]).into_bytes())
                        .or_default() += 1;
                }
            }
        }
        let want: Vec<(String, u64)> = want
            .into_iter()
            .map(|(k, c)| (String::from_utf8(k).unwrap(), c))
            .collect();
        assert_eq!(got, want);
    }
}
