//! MetaCLIP's text spacing, the one matching rule shared by the query list and curation.
//!
//! A text becomes `" " + text + " "`; each of `,` `.` `;` `:` `?` `!` and the backquote is
//! wrapped in spaces; tab, CR and LF become spaces. A query entry `e` matches the text when
//! `" " + e + " "` occurs in the spaced text (case-sensitive; every overlapping occurrence
//! counts). The query stage counts Wikipedia tokens with [`tokens`], so that every counted
//! token is something the matcher can find.

/// Characters wrapped in spaces by [`spaced`].
pub const SPACED_PUNCT: &[char] = &[',', '.', ';', ':', '?', '!', '`'];

/// The spaced form of `text` (see the module docs).
pub fn spaced(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8 + 2);
    out.push(' ');
    for c in text.chars() {
        match c {
            '\t' | '\r' | '\n' => out.push(' '),
            c if SPACED_PUNCT.contains(&c) => {
                out.push(' ');
                out.push(c);
                out.push(' ');
            }
            c => out.push(c),
        }
    }
    out.push(' ');
    out
}

/// The pattern searched for an entry: `" " + entry + " "`.
pub fn pattern(entry: &str) -> String {
    let mut p = String::with_capacity(entry.len() + 2);
    p.push(' ');
    p.push_str(entry);
    p.push(' ');
    p
}

/// Whether `entry` matches `text` under MetaCLIP's semantics.
pub fn matches(entry: &str, text: &str) -> bool {
    spaced(text).contains(&pattern(entry))
}

/// Brackets and quotes stripped from both ends of a token when counting.
pub const STRIP: &[char] = &[
    '(', ')', '[', ']', '{', '}', '<', '>', '"', '\'', '\u{201c}', '\u{201d}', '\u{2018}',
    '\u{2019}', '\u{ab}', '\u{bb}',
];

/// The tokens counted for the query list: the spaced text split on spaces, with surrounding
/// brackets and quotes stripped (`(dog)` counts as `dog`). Empty tokens are skipped.
///
/// A stripped token is not always findable by [`matches`] in its original text (`(dog)` does not
/// contain `" dog "`), but it is findable in the plain text of other mentions; counting it this
/// way follows how people write captions (`a (brown) dog`).
pub fn tokens(spaced_text: &str) -> impl Iterator<Item = &str> {
    spaced_text
        .split(' ')
        .map(|t| t.trim_matches(STRIP))
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacing_and_matching() {
        assert_eq!(spaced("a dog, running."), " a dog ,  running .  ");
        assert!(matches("dog", "A dog."));
        assert!(matches("hot dog", "hot dog!"));
        assert!(!matches("dog", "dogs"));
        assert!(!matches("Dog", "a dog"));
        assert!(matches("dog", "tab\tdog\nline"));
        // Entries are not spaced, only texts (as MetaCLIP): an entry with a period never matches.
        assert!(!matches("3.5", "3.5"));
    }

    #[test]
    fn counted_tokens() {
        let s = spaced("The (dog) said \"hi\", [ok].");
        let t: Vec<&str> = tokens(&s).collect();
        assert_eq!(t, vec!["The", "dog", "said", "hi", ",", "ok", "."]);
    }
}
