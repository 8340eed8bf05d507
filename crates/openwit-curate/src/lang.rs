//! Language identification of captions: the language (ISO 639-1 where it has one) and a
//! confidence in 0..1.
//!
//! Two engines are built in; `docs/BENCHMARKS.md` (`## curate`) has the measurement that chose
//! the default (accuracy on short captions in 22 languages, and speed):
//! - `whichlang`: a linear model over byte n-grams (16 languages), very fast and accurate on
//!   short texts; it gives no probability, so the confidence is 1 when the text has enough
//!   letters to decide and lower for very short texts.
//! - `whatlang`: trigram profiles (69 languages), with a confidence.

use serde::{Deserialize, Serialize};

/// Which identifier runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    #[default]
    Whichlang,
    Whatlang,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Whichlang => "whichlang",
            Engine::Whatlang => "whatlang",
        }
    }
}

/// The language of `text` and the confidence of that guess.
pub fn detect(engine: Engine, text: &str) -> (&'static str, f32) {
    match engine {
        Engine::Whichlang => {
            let lang = whichlang::detect_language(text);
            let letters = text.chars().filter(|c| c.is_alphabetic()).take(16).count();
            // No probability from the model: trust grows with the letters it saw.
            let conf = (letters as f32 / 16.0).min(1.0);
            (iso1(lang.three_letter_code()), conf)
        }
        Engine::Whatlang => match whatlang::detect(text) {
            Some(info) => (iso1(info.lang().code()), info.confidence() as f32),
            None => ("und", 0.0),
        },
    }
}

/// The share of `text`'s words (runs of letters, two or more letters long, lower-cased) that
/// are in `vocabulary`; None for a text of fewer than two such words. With the query list's
/// one-word entries (English Wikipedia's frequent words and WordNet's lemmas) as the vocabulary,
/// a high share says English where the identifiers, which need more text, guess another
/// language: with WordNet's lemmas, none of the 525 non-English captions of the project's
/// 22-language set (`langset`) reaches 0.9 (six reach 0.7: "das blaue Boot am See").
pub fn english_share(text: &str, vocabulary: &std::collections::HashSet<String>) -> Option<f32> {
    let mut words = 0u32;
    let mut known = 0u32;
    for w in text
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| w.chars().count() >= 2)
    {
        words += 1;
        known += vocabulary.contains(&w.to_lowercase()) as u32;
    }
    (words >= 2).then(|| known as f32 / words as f32)
}

/// ISO 639-3 -> ISO 639-1 for the languages the engines know; other codes pass through.
pub fn iso1(code3: &'static str) -> &'static str {
    match code3 {
        "eng" => "en",
        "deu" => "de",
        "fra" => "fr",
        "spa" => "es",
        "ita" => "it",
        "por" => "pt",
        "nld" => "nl",
        "swe" => "sv",
        "tur" => "tr",
        "rus" => "ru",
        "ara" => "ar",
        "cmn" => "zh",
        "jpn" => "ja",
        "kor" => "ko",
        "vie" => "vi",
        "hin" => "hi",
        "pol" => "pl",
        "ind" => "id",
        "dan" => "da",
        "fin" => "fi",
        "ces" => "cs",
        "ron" => "ro",
        "ukr" => "uk",
        "nob" => "nb",
        "nno" => "nn",
        "hun" => "hu",
        "ell" => "el",
        "heb" => "he",
        "tha" => "th",
        "pes" => "fa",
        "ben" => "bn",
        "bul" => "bg",
        "hrv" => "hr",
        "srp" => "sr",
        "slk" => "sk",
        "slv" => "sl",
        "lit" => "lt",
        "lav" => "lv",
        "est" => "et",
        "cat" => "ca",
        "epo" => "eo",
        "afr" => "af",
        "zul" => "zu",
        "msa" | "zlm" => "ms",
        "tgl" => "tl",
        "urd" => "ur",
        "tam" => "ta",
        "tel" => "te",
        "mar" => "mr",
        "guj" => "gu",
        "kan" => "kn",
        "mal" => "ml",
        "pan" => "pa",
        "nep" => "ne",
        "kat" => "ka",
        "hye" => "hy",
        "aze" => "az",
        "bel" => "be",
        "mkd" => "mk",
        "uzb" => "uz",
        "yid" => "yi",
        "khm" => "km",
        "mya" => "my",
        "sin" => "si",
        "amh" => "am",
        "jav" => "jv",
        "lat" => "la",
        "sna" => "sn",
        "aka" => "ak",
        "ori" => "or",
        "tuk" => "tk",
        "cym" => "cy",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_share_counts_words_of_two_letters_or_more() {
        let v: std::collections::HashSet<String> = ["british", "flag", "britain", "boot"]
            .map(String::from)
            .into();
        assert_eq!(
            english_share("British Flag (britain, flag, british)", &v),
            Some(1.0)
        );
        assert_eq!(english_share("das Boot", &v), Some(0.5));
        // one word, digits and one-letter words decide nothing
        assert_eq!(english_share("Flag 2 a", &v), None);
        assert_eq!(english_share("", &v), None);
    }

    #[test]
    fn english_and_others() {
        for engine in [Engine::Whichlang, Engine::Whatlang] {
            let (l, c) = detect(engine, "A brown dog running on the beach at sunset");
            assert_eq!(l, "en", "{engine:?}");
            assert!(c > 0.0 && c <= 1.0);
        }
        assert_eq!(
            detect(Engine::Whichlang, "Коричневая собака бежит по пляжу").0,
            "ru"
        );
        assert_eq!(
            detect(
                Engine::Whatlang,
                "Der braune Hund läuft schnell über die große Wiese"
            )
            .0,
            "de"
        );
    }
}
