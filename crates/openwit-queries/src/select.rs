//! From count tables to the query list: unigram threshold, bigram PMI, title views, and the
//! merge in MetaCLIP's order.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};

use serde::{Deserialize, Serialize};

use crate::config::{BigramMode, QueriesConfig};

/// Where an entry came from (the first source that added it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Number,
    Wordnet,
    WikiUnigram,
    WikiBigram,
    WikiTitle,
}

impl Source {
    pub const ALL: [Source; 5] = [
        Source::Number,
        Source::Wordnet,
        Source::WikiUnigram,
        Source::WikiBigram,
        Source::WikiTitle,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Number => "number",
            Source::Wordnet => "wordnet",
            Source::WikiUnigram => "wiki_unigram",
            Source::WikiBigram => "wiki_bigram",
            Source::WikiTitle => "wiki_title",
        }
    }
}

/// One entry of the list, with the figures that selected it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub entry: String,
    pub source: Source,
    /// Wikipedia count (unigram or bigram entries).
    pub count: Option<u64>,
    /// PMI (bigram entries).
    pub pmi: Option<f64>,
    /// Summed pageviews (title entries).
    pub views: Option<u64>,
}

impl Entry {
    pub fn new(entry: impl Into<String>, source: Source) -> Self {
        Entry {
            entry: entry.into(),
            source,
            count: None,
            pmi: None,
            views: None,
        }
    }
}

/// NLTK's `BigramAssocMeasures.pmi`: `log2(n_ab * N) - log2(n_a * n_b)`, products exact (as
/// Python's integers), each rounded once to a float as `math.log2` does.
pub fn pmi(n_ab: u64, n_a: u64, n_b: u64, n: u64) -> f64 {
    let num = u128::from(n_ab) * u128::from(n);
    let den = u128::from(n_a) * u128::from(n_b);
    (num as f64).log2() - (den as f64).log2()
}

/// Python's `string.punctuation`: single-character entries from it are dropped.
pub const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// Whether MetaCLIP keeps an entry: non-empty and not a single punctuation character.
pub fn acceptable(e: &str) -> bool {
    !(e.is_empty() || e.len() == 1 && PUNCTUATION.contains(e))
}

/// Candidate bigram with its PMI; ordered best first (PMI descending, then entry ascending).
#[derive(Debug, Clone, PartialEq)]
pub struct Bigram {
    pub entry: String,
    pub count: u64,
    pub pmi: f64,
}

impl Eq for Bigram {}
impl Ord for Bigram {
    /// "Greater" is better: higher PMI, then the byte-wise smaller entry.
    fn cmp(&self, o: &Self) -> Ordering {
        self.pmi
            .total_cmp(&o.pmi)
            .then_with(|| o.entry.as_bytes().cmp(self.entry.as_bytes()))
    }
}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// Collects bigrams by the configured mode with bounded memory in `top_k` mode.
pub struct BigramPicker {
    mode: BigramMode,
    min_pmi: f64,
    k: usize,
    kept: Vec<Bigram>,
    heap: BinaryHeap<std::cmp::Reverse<Bigram>>,
}

impl BigramPicker {
    pub fn new(cfg: &QueriesConfig) -> Self {
        BigramPicker {
            mode: cfg.bigram_mode,
            min_pmi: cfg.bigram_min_pmi,
            k: usize::try_from(cfg.bigram_top_k).unwrap_or(usize::MAX),
            kept: Vec::new(),
            heap: BinaryHeap::new(),
        }
    }

    pub fn offer(&mut self, b: Bigram) {
        match self.mode {
            BigramMode::Threshold => {
                if b.pmi >= self.min_pmi {
                    self.kept.push(b);
                }
            }
            BigramMode::TopK => {
                if self.k == 0 {
                    return;
                }
                if self.heap.len() < self.k {
                    self.heap.push(std::cmp::Reverse(b));
                } else if let Some(min) = self.heap.peek()
                    && b > min.0
                {
                    self.heap.pop();
                    self.heap.push(std::cmp::Reverse(b));
                }
            }
        }
    }

    /// Offers a bigram by its parts; its entry is copied only if it is kept for now.
    pub fn offer_parts(&mut self, entry: &str, count: u64, pmi: f64) {
        match self.mode {
            BigramMode::Threshold => {
                if pmi < self.min_pmi {
                    return;
                }
            }
            BigramMode::TopK => {
                if self.k == 0 {
                    return;
                }
                if self.heap.len() >= self.k
                    && let Some(min) = self.heap.peek()
                    && pmi
                        .total_cmp(&min.0.pmi)
                        .then_with(|| min.0.entry.as_bytes().cmp(entry.as_bytes()))
                        != Ordering::Greater
                {
                    return;
                }
            }
        }
        self.offer(Bigram {
            entry: entry.to_string(),
            count,
            pmi,
        });
    }

    /// The chosen bigrams, best first.
    pub fn finish(self) -> Vec<Bigram> {
        let mut v = match self.mode {
            BigramMode::Threshold => self.kept,
            BigramMode::TopK => self.heap.into_iter().map(|r| r.0).collect(),
        };
        v.sort_by(|a, b| b.cmp(a));
        v
    }
}

/// Merges the sources in MetaCLIP's order — `"0"`..`"99"`, WordNet, unigrams, bigrams, titles —
/// dropping empty and single-punctuation entries and duplicates (case-sensitive), up to `cap`.
/// Returns the list and how many candidates each source offered.
pub fn merge(
    wordnet: Vec<String>,
    unigrams: Vec<Entry>,
    bigrams: Vec<Entry>,
    titles: Vec<Entry>,
    cap: u64,
) -> (Vec<Entry>, MergeStats) {
    let mut seen: HashSet<String> = HashSet::new();
    let mut out: Vec<Entry> = Vec::new();
    let mut stats = MergeStats::default();
    let numbers = (0..100).map(|i| Entry::new(i.to_string(), Source::Number));
    let wordnet = wordnet.into_iter().map(|w| Entry::new(w, Source::Wordnet));
    let all = numbers
        .chain(wordnet)
        .chain(unigrams)
        .chain(bigrams)
        .chain(titles);
    for e in all {
        *stats.offered.entry(e.source.as_str().into()).or_insert(0) += 1;
        if !acceptable(&e.entry) {
            stats.rejected += 1;
            continue;
        }
        if seen.contains(&e.entry) {
            stats.duplicates += 1;
            continue;
        }
        if out.len() as u64 >= cap {
            stats.over_cap += 1;
            continue;
        }
        seen.insert(e.entry.clone());
        out.push(e);
    }
    (out, stats)
}

/// What the merge saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MergeStats {
    pub offered: std::collections::BTreeMap<String, u64>,
    pub rejected: u64,
    pub duplicates: u64,
    pub over_cap: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pmi_as_nltk() {
        // n_ab = 2, n_a = 2, n_b = 4, N = 16: log2(2*16 / (2*4)) = log2(4) = 2.
        assert_eq!(pmi(2, 2, 4, 16), 2.0);
        assert_eq!(pmi(1, 1, 1, 1 << 30), 30.0);
        // Products beyond 2^64 stay exact before the one rounding.
        let p = pmi(u64::MAX / 2, u64::MAX / 2, 3, 12);
        assert!((p - 2.0).abs() < 1e-12, "{p}");
    }

    #[test]
    fn picker_modes() {
        let b = |e: &str, pmi: f64| Bigram {
            entry: e.into(),
            count: 1,
            pmi,
        };
        let mut cfg = QueriesConfig {
            bigram_min_pmi: 2.0,
            ..Default::default()
        };
        let mut p = BigramPicker::new(&cfg);
        for x in [b("a b", 1.0), b("c d", 3.0), b("e f", 2.0)] {
            p.offer(x);
        }
        let got: Vec<String> = p.finish().into_iter().map(|x| x.entry).collect();
        assert_eq!(got, vec!["c d", "e f"]);
        cfg.bigram_mode = BigramMode::TopK;
        cfg.bigram_top_k = 2;
        let mut p = BigramPicker::new(&cfg);
        for x in [b("z z", 5.0), b("a b", 1.0), b("y y", 5.0), b("c d", 3.0)] {
            p.offer(x);
        }
        let got: Vec<String> = p.finish().into_iter().map(|x| x.entry).collect();
        assert_eq!(got, vec!["y y", "z z"]);
    }

    #[test]
    fn merge_order_dedup_cap() {
        let uni = vec![
            Entry::new("dog", Source::WikiUnigram),
            Entry::new(",", Source::WikiUnigram),
            Entry::new("Dog", Source::WikiUnigram),
            Entry::new("7", Source::WikiUnigram),
        ];
        let bi = vec![Entry::new("hot dog", Source::WikiBigram)];
        let ti = vec![
            Entry::new("dog", Source::WikiTitle),
            Entry::new("Red fox", Source::WikiTitle),
        ];
        let (out, st) = merge(
            vec!["dog".into(), "".into(), "used to".into()],
            uni,
            bi,
            ti,
            104,
        );
        let names: Vec<&str> = out.iter().map(|e| e.entry.as_str()).collect();
        assert_eq!(&names[..3], &["0", "1", "2"]);
        assert_eq!(&names[100..], &["dog", "used to", "Dog", "hot dog"]);
        assert_eq!(out[100].source, Source::Wordnet);
        assert_eq!(out[102].source, Source::WikiUnigram);
        assert_eq!((st.rejected, st.duplicates, st.over_cap), (2, 3, 1));
    }
}
