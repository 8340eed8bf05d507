//! Searching every shard index of a workdir at once.

use std::path::{Path, PathBuf};

use openwit_core::artifact::{self, ShardTars};
use serde::Serialize;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{
    AllQuery, Bm25StatisticsProvider, BooleanQuery, Occur, Query, QueryParser, RangeQuery,
    TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption, Value};
use tantivy::{DocAddress, Index, IndexReader, ReloadPolicy, Searcher, TantivyDocument, Term};

use crate::INDEX_DIR;
use crate::build::SOURCE_FILE;
use crate::error::{IndexError, Result};
use crate::schema::{Fields, register_tokenizers};

/// Where a member lies in its tar.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberRef {
    pub ext: String,
    pub offset: u64,
    pub size: u64,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub score: f32,
    pub shard: String,
    pub key: String,
    pub caption: String,
    pub url: String,
    pub entries: Vec<String>,
    pub entry_ids: Vec<u64>,
    pub domain: String,
    pub language: String,
    pub width: Option<u64>,
    pub height: Option<u64>,
    /// The shard tar (absolute).
    pub tar: PathBuf,
    pub image: Option<MemberRef>,
    pub json: Option<MemberRef>,
}

/// A search's results.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResults {
    pub query: String,
    pub entry: Option<String>,
    /// Matching samples over all shards.
    pub total: u64,
    pub offset: usize,
    pub hits: Vec<Hit>,
    /// Shard indexes that could not be opened or searched (path, reason); they are skipped.
    pub skipped: Vec<(PathBuf, String)>,
}

/// What to search for.
#[derive(Debug, Clone)]
pub struct SearchOptions {
    pub limit: usize,
    pub offset: usize,
    /// Only samples that matched this query entry (case-insensitive, whole entry).
    pub entry: Option<String>,
}

/// Filters that narrow a search besides its text (the web UI's controls): each one given must
/// hold. Text values compare whole and case-insensitively, as the index stores them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// The image URL's host (`www.` dropped), e.g. `example.org`.
    pub domain: Option<String>,
    /// The caption's language code, e.g. `en`.
    pub language: Option<String>,
    /// The smallest width, in pixels (as the index has it).
    pub min_width: Option<u64>,
    /// The smallest height, in pixels.
    pub min_height: Option<u64>,
}

impl Filters {
    /// Whether no filter is set.
    pub fn is_empty(&self) -> bool {
        *self == Filters::default()
    }
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            limit: 20,
            offset: 0,
            entry: None,
        }
    }
}

struct Part {
    name: String,
    path: PathBuf,
    tar: PathBuf,
    index: Index,
    reader: IndexReader,
}

/// The shard indexes of a workdir, opened for searching.
pub struct IndexSet {
    workdir: PathBuf,
    parts: Vec<Part>,
    fields: Option<Fields>,
    /// Shard indexes that could not be opened (path, reason).
    pub skipped: Vec<(PathBuf, String)>,
}

/// BM25 statistics summed over every shard, so that scores compare across shards.
struct Global<'a>(&'a [Searcher]);

impl Bm25StatisticsProvider for Global<'_> {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        self.0.iter().map(|s| s.total_num_tokens(field)).sum()
    }
    fn total_num_docs(&self) -> tantivy::Result<u64> {
        self.0.iter().map(|s| s.total_num_docs()).sum()
    }
    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        self.0.iter().map(|s| s.doc_freq(term)).sum()
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    format!(
        "damaged index data ({})",
        openwit_core::panic_message(p.as_ref())
    )
}

fn is_shard_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
}

impl IndexSet {
    /// Opens every committed shard index under `WORKDIR/index/`. A damaged one is skipped, with
    /// a warning naming its path. Errors only when there is no index folder at all.
    pub fn open(workdir: &Path) -> Result<IndexSet> {
        let dir = workdir.join(INDEX_DIR);
        let rd = std::fs::read_dir(&dir).map_err(|_| {
            IndexError::NoIndex(format!(
                "{}: no index here; build it with `openwit index PIPELINE.toml` (or add an [index] table to the pipeline)",
                dir.display()
            ))
        })?;
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| is_shard_name(n))
            .collect();
        names.sort();
        let mut set = IndexSet {
            workdir: workdir.to_path_buf(),
            parts: Vec::new(),
            fields: None,
            skipped: Vec::new(),
        };
        for name in names {
            let path = dir.join(&name);
            // tantivy may panic on damaged files rather than return an error: contain it.
            let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                open_part(workdir, &name, &path)
            }))
            .unwrap_or_else(|p| Err(IndexError::tantivy(&path, panic_message(&p))));
            match opened {
                Ok((part, fields)) => {
                    set.fields.get_or_insert(fields);
                    set.parts.push(part);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "damaged shard index; skipped");
                    set.skipped.push((path, e.to_string()));
                }
            }
        }
        Ok(set)
    }

    /// The workdir.
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// Names of the shard indexes opened.
    pub fn shards(&self) -> Vec<&str> {
        self.parts.iter().map(|p| p.name.as_str()).collect()
    }

    /// Samples indexed in all shards.
    pub fn num_docs(&self) -> u64 {
        self.parts
            .iter()
            .map(|p| p.reader.searcher().num_docs())
            .sum()
    }

    /// Parses `text` into a query (an empty text matches everything), with the entry filter and
    /// `filters`.
    fn parse(
        &self,
        text: &str,
        entry: Option<&str>,
        filters: &Filters,
    ) -> Result<Option<Box<dyn Query>>> {
        let (Some(f), Some(first)) = (self.fields, self.parts.first()) else {
            return Ok(None);
        };
        let text = text.trim();
        let mut q: Box<dyn Query> = if text.is_empty() || text == "*" {
            Box::new(AllQuery)
        } else {
            let mut parser = QueryParser::for_index(&first.index, vec![f.caption]);
            parser.set_conjunction_by_default();
            parser.parse_query(text).map_err(|e| IndexError::Query {
                query: text.to_string(),
                message: e.to_string(),
            })?
        };
        let mut must: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let text_terms = [
            (f.entry, entry),
            (f.domain, filters.domain.as_deref()),
            (f.language, filters.language.as_deref()),
        ];
        for (field, value) in text_terms {
            if let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) {
                let term = Term::from_field_text(field, &v.to_lowercase());
                must.push((
                    Occur::Must,
                    Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
                ));
            }
        }
        for (field, min) in [(f.width, filters.min_width), (f.height, filters.min_height)] {
            if let Some(min) = min.filter(|&m| m > 0) {
                must.push((
                    Occur::Must,
                    Box::new(RangeQuery::new(
                        std::ops::Bound::Included(Term::from_field_u64(field, min)),
                        std::ops::Bound::Unbounded,
                    )),
                ));
            }
        }
        if !must.is_empty() {
            must.insert(0, (Occur::Must, q));
            q = Box::new(BooleanQuery::new(must));
        }
        Ok(Some(q))
    }

    /// Ranked matches of `text` over every shard index.
    pub fn search(&self, text: &str, opts: &SearchOptions) -> Result<SearchResults> {
        self.search_filtered(text, opts, &Filters::default())
    }

    /// Ranked matches of `text` that pass `filters`, over every shard index.
    pub fn search_filtered(
        &self,
        text: &str,
        opts: &SearchOptions,
        filters: &Filters,
    ) -> Result<SearchResults> {
        let mut res = SearchResults {
            query: text.to_string(),
            entry: opts.entry.clone(),
            total: 0,
            offset: opts.offset,
            hits: Vec::new(),
            skipped: self.skipped.clone(),
        };
        let Some(query) = self.parse(text, opts.entry.as_deref(), filters)? else {
            return Ok(res);
        };
        let searchers: Vec<Searcher> = self.parts.iter().map(|p| p.reader.searcher()).collect();
        let global = Global(&searchers);
        // The best `offset + limit` of each shard, but never more than a shard holds: what a
        // search allocates is bounded by the index, whatever offset it is asked for.
        let largest = searchers
            .iter()
            .map(|s| usize::try_from(s.num_docs()).unwrap_or(usize::MAX))
            .max()
            .unwrap_or(0);
        let want = opts.offset.saturating_add(opts.limit).min(largest);
        let collector = (Count, TopDocs::with_limit(want.max(1)).order_by_score());
        let mut all: Vec<(f32, usize, DocAddress)> = Vec::new();
        // Best first; ties in shard then document order, so results are deterministic.
        let order = |a: &(f32, usize, DocAddress), b: &(f32, usize, DocAddress)| {
            b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
        };
        for (i, s) in searchers.iter().enumerate() {
            let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                s.search_with_statistics_provider(query.as_ref(), &collector, &global)
                    .map_err(|e| e.to_string())
            }))
            .unwrap_or_else(|p| Err(panic_message(&p)));
            match found {
                Ok((count, top)) => {
                    res.total += count as u64;
                    all.extend(top.into_iter().map(|(score, a)| (score, i, a)));
                    // Keep the best `want` over the shards so far (memory: about 2 x want).
                    if all.len() > want.saturating_mul(2).max(1024) {
                        all.sort_by(order);
                        all.truncate(want);
                    }
                }
                Err(e) => {
                    let p = &self.parts[i].path;
                    tracing::warn!(path = %p.display(), error = %e, "damaged shard index; skipped");
                    res.skipped.push((p.clone(), e.to_string()));
                }
            }
        }
        all.sort_by(order);
        for (score, i, addr) in all.into_iter().skip(opts.offset).take(opts.limit) {
            let part = &self.parts[i];
            let doc = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                searchers[i]
                    .doc::<TantivyDocument>(addr)
                    .map_err(|e| e.to_string())
            }))
            .unwrap_or_else(|p| Err(panic_message(&p)));
            match doc {
                Ok(doc) => res.hits.push(self.hit(part, score, &doc)),
                Err(e) => res.skipped.push((part.path.clone(), e)),
            }
        }
        Ok(res)
    }

    /// The values of a text field (`"entry"`, `"domain"` or `"language"`) with the number of
    /// samples holding each, most frequent first (ties by value), at most `max` of them, in the
    /// first `max_shards` shard indexes. Read from the term dictionaries: no document is loaded.
    pub fn field_values(&self, field: &str, max: usize, max_shards: usize) -> Vec<(String, u64)> {
        let Some(f) = self.fields else {
            return Vec::new();
        };
        let field = match field {
            "entry" => f.entry,
            "domain" => f.domain,
            "language" => f.language,
            _ => return Vec::new(),
        };
        let mut counts: std::collections::HashMap<String, u64> = Default::default();
        for part in self.parts.iter().take(max_shards) {
            let searcher = part.reader.searcher();
            for seg in searcher.segment_readers() {
                let Ok(inv) = seg.inverted_index(field) else {
                    continue;
                };
                let Ok(mut stream) = inv.terms().stream() else {
                    continue;
                };
                while let Some((key, info)) = stream.next() {
                    let value = String::from_utf8_lossy(key);
                    if !value.is_empty() {
                        *counts.entry(value.into_owned()).or_default() += u64::from(info.doc_freq);
                    }
                }
            }
        }
        let mut v: Vec<(String, u64)> = counts.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(max);
        v
    }

    /// The number of indexed samples that matched the query entry `entry` (case-insensitive).
    pub fn entry_count(&self, entry: &str) -> u64 {
        let Some(f) = self.fields else {
            return 0;
        };
        let term = Term::from_field_text(f.entry, &entry.trim().to_lowercase());
        self.parts
            .iter()
            .map(|p| p.reader.searcher().doc_freq(&term).unwrap_or(0))
            .sum()
    }

    /// The sample `key` of shard `shard`, if indexed.
    pub fn get(&self, shard: &str, key: &str) -> Result<Option<Hit>> {
        let (Some(f), Some(part)) = (self.fields, self.parts.iter().find(|p| p.name == shard))
        else {
            return Ok(None);
        };
        let searcher = part.reader.searcher();
        let q = TermQuery::new(Term::from_field_text(f.key, key), IndexRecordOption::Basic);
        let top = searcher
            .search(&q, &TopDocs::with_limit(1).order_by_score())
            .map_err(|e| IndexError::tantivy(&part.path, e))?;
        match top.first() {
            Some((score, addr)) => {
                let doc: TantivyDocument = searcher
                    .doc(*addr)
                    .map_err(|e| IndexError::tantivy(&part.path, e))?;
                Ok(Some(self.hit(part, *score, &doc)))
            }
            None => Ok(None),
        }
    }

    fn hit(&self, part: &Part, score: f32, doc: &TantivyDocument) -> Hit {
        let f = self.fields.expect("fields of an opened index");
        let s = |field: Field| {
            doc.get_first(field)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let u = |field: Field| doc.get_first(field).and_then(|v| v.as_u64());
        let image = u(f.image_offset).map(|offset| MemberRef {
            ext: s(f.image_ext),
            offset,
            size: u(f.image_size).unwrap_or(0),
        });
        let json = u(f.json_offset).map(|offset| MemberRef {
            ext: "json".into(),
            offset,
            size: u(f.json_size).unwrap_or(0),
        });
        Hit {
            score,
            shard: s(f.shard),
            key: s(f.key),
            caption: s(f.caption),
            url: s(f.url),
            entries: doc
                .get_all(f.entry)
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            entry_ids: doc.get_all(f.entry_id).filter_map(|v| v.as_u64()).collect(),
            domain: s(f.domain),
            language: s(f.language),
            width: u(f.width),
            height: u(f.height),
            tar: part.tar.clone(),
            image,
            json,
        }
    }
}

fn open_part(workdir: &Path, name: &str, path: &Path) -> Result<(Part, Fields)> {
    let index = Index::open_in_dir(path).map_err(|e| IndexError::tantivy(path, e))?;
    register_tokenizers(&index);
    let fields = Fields::of(&index.schema()).ok_or_else(|| {
        IndexError::tantivy(
            path,
            "not an OpenWIT index (unknown schema); rebuild it with `openwit index`",
        )
    })?;
    let reader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()
        .map_err(|e| IndexError::tantivy(path, e))?;
    // Opening checks the meta file; touch the segments too, so a damaged one shows now.
    let searcher: Searcher = reader.searcher();
    for seg in searcher.segment_readers() {
        for f in [fields.caption, fields.entry, fields.key] {
            seg.inverted_index(f)
                .map_err(|e| IndexError::tantivy(path, e))?;
        }
    }
    let src = path.join(SOURCE_FILE);
    let tar = std::fs::read(&src)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["tar"].as_str().map(PathBuf::from))
        .map(|t| if t.is_absolute() { t } else { workdir.join(t) })
        .unwrap_or_else(|| {
            // an index built before the source file: the shard of its name in the workdir
            artifact::dir_in_workdir::<ShardTars>(workdir).join(format!("{name}.tar"))
        });
    Ok((
        Part {
            name: name.to_string(),
            path: path.to_path_buf(),
            tar,
            index,
            reader,
        },
        fields,
    ))
}

/// `openwit search`: opens the index of `workdir` and runs `text`.
pub fn search(workdir: &Path, text: &str, opts: &SearchOptions) -> Result<SearchResults> {
    let set = IndexSet::open(workdir)?;
    if set.parts.is_empty() {
        return Err(IndexError::NoIndex(format!(
            "{}: no usable shard index{}; build it with `openwit index PIPELINE.toml`",
            workdir.join(INDEX_DIR).display(),
            if set.skipped.is_empty() {
                String::new()
            } else {
                format!(" ({} damaged, skipped)", set.skipped.len())
            }
        )));
    }
    set.search(text, opts)
}

/// The results for people: one block per hit (rank, score, shard/key, caption, url, entries).
pub fn format_results(r: &SearchResults) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    for (path, why) in &r.skipped {
        let _ = writeln!(
            s,
            "warning: skipped damaged index {}: {why}",
            path.display()
        );
    }
    let _ = writeln!(
        s,
        "{} match(es) for `{}`{}; {}",
        r.total,
        r.query,
        r.entry
            .as_ref()
            .map(|e| format!(" in entry `{e}`"))
            .unwrap_or_default(),
        if !r.hits.is_empty() {
            format!("showing {}-{}", r.offset + 1, r.offset + r.hits.len())
        } else if r.total > 0 {
            format!("none shown: offset {} is past the last match", r.offset)
        } else {
            "none shown".to_string()
        }
    );
    for (i, h) in r.hits.iter().enumerate() {
        let _ = writeln!(
            s,
            "{:>4}. [{:.3}] {}/{}  {}\n      {}{}",
            r.offset + i + 1,
            h.score,
            h.shard,
            h.key,
            h.caption.replace('\n', " "),
            h.url,
            if h.entries.is_empty() {
                String::new()
            } else {
                format!("\n      entries: {}", h.entries.join(", "))
            }
        );
    }
    s
}
