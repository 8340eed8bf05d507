//! A deterministic synthetic vocabulary, query list and caption stream for the benchmarks:
//! Zipf-distributed content words (made of syllables) mixed with English function words, so that
//! captions look like alt text to the language identifier and entries match with a long tail.

#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SYLLABLES: &[&str] = &[
    "ba", "ri", "to", "ne", "ka", "lo", "mi", "su", "de", "ra", "vo", "li", "an", "er", "in", "on",
    "st", "ch", "tr", "pl", "ow", "ea", "th", "sh", "gr", "el", "or", "ut", "am", "ic",
];
const FUNCTION: &[&str] = &[
    "the", "a", "of", "in", "on", "with", "and", "at", "for", "from", "near", "by", "photo",
    "view", "old", "new", "small", "big", "red", "blue", "house", "street", "river", "city",
    "people",
];
const PUNCT: &[&str] = &[",", ".", ":", "!", "?", ";"];

pub struct Vocab {
    pub words: Vec<String>,
    cdf: Vec<f64>,
}

impl Vocab {
    /// `n` distinct content words with Zipf(1.0) frequencies.
    pub fn new(n: usize) -> Self {
        let mut words = Vec::with_capacity(n);
        let mut seen = std::collections::HashSet::new();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        while words.len() < n {
            let k = rng.random_range(2..5);
            let w: String = (0..k)
                .map(|_| SYLLABLES[rng.random_range(0..SYLLABLES.len())])
                .collect();
            if seen.insert(w.clone()) {
                words.push(w);
            }
        }
        let mut cdf = Vec::with_capacity(n);
        let mut acc = 0.0;
        for i in 0..n {
            acc += 1.0 / (i as f64 + 1.0);
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        Vocab { words, cdf }
    }

    pub fn sample(&self, rng: &mut ChaCha8Rng) -> &str {
        let u: f64 = rng.random();
        let i = self
            .cdf
            .partition_point(|&c| c < u)
            .min(self.words.len() - 1);
        &self.words[i]
    }

    /// `n` distinct entries: the most frequent words, then bigrams and trigrams of sampled words
    /// (so many of them occur in captions), a few capitalized.
    pub fn entries(&self, n: usize) -> Vec<String> {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let mut out = Vec::with_capacity(n);
        let mut seen = std::collections::HashSet::new();
        for w in self.words.iter().take(n / 5) {
            if seen.insert(w.clone()) {
                out.push(w.clone());
            }
        }
        while out.len() < n {
            let k = if rng.random_bool(0.8) { 2 } else { 3 };
            let mut e: Vec<String> = (0..k).map(|_| self.sample(&mut rng).to_string()).collect();
            if rng.random_bool(0.1) {
                let c = e[0].remove(0).to_ascii_uppercase();
                e[0].insert(0, c);
            }
            let e = e.join(" ");
            if seen.insert(e.clone()) {
                out.push(e);
            }
        }
        out
    }

    /// One caption of 4..14 words: content and function words, some punctuation and tabs.
    pub fn caption(&self, rng: &mut ChaCha8Rng) -> String {
        let n = rng.random_range(4..15);
        let mut s = String::new();
        for i in 0..n {
            if i > 0 {
                s.push(if rng.random_bool(0.02) { '\t' } else { ' ' });
            }
            if rng.random_bool(0.45) {
                s.push_str(FUNCTION[rng.random_range(0..FUNCTION.len())]);
            } else {
                s.push_str(self.sample(rng));
            }
            if rng.random_bool(0.08) {
                s.push_str(PUNCT[rng.random_range(0..PUNCT.len())]);
            }
        }
        if rng.random_bool(0.3) {
            let c = s.remove(0).to_ascii_uppercase();
            s.insert(0, c);
        }
        s
    }
}
