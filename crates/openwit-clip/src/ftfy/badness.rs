//! ftfy's "badness" heuristic: whether text has a character sequence that is far more likely
//! to be mojibake than intended (an accented lower-case letter followed by a currency sign, a
//! C1 control, `Ã` before a non-breaking space, ...).
//!
//! The character groups are ftfy's own choices (the few hundred characters that appear when
//! UTF-8 is decoded as one of the single-byte encodings it knows), so they are listed here as
//! ftfy 6.3 defines them; the sequences are matched with one `regex`.

use std::sync::OnceLock;

use regex::Regex;

/// A character group: single characters, and inclusive ranges.
struct Group(&'static str, &'static [(char, char)]);

impl Group {
    /// The group as the inside of a regex character class.
    fn class(&self) -> String {
        let mut s = String::new();
        for c in self.0.chars() {
            s.push_str(&format!("\\x{{{:x}}}", c as u32));
        }
        for (a, b) in self.1 {
            s.push_str(&format!("\\x{{{:x}}}-\\x{{{:x}}}", *a as u32, *b as u32));
        }
        s
    }
}

// Characters at home in many contexts: not mojibake by themselves.
const COMMON: Group = Group("\u{a0}\u{ad}·´–—―…’", &[]);
const C1: Group = Group("", &[('\u{80}', '\u{9f}')]);
// Characters that next to nothing uses outside mojibake.
const BAD: Group = Group("¦¤¨¬¯¸ƒˆˇ˘˛˜†‡‰⌐◊\u{fffd}ªº", &[]);
const LAW: Group = Group("¶§", &[]);
const CURRENCY: Group = Group("¢£¥₧€", &[]);
const START_PUNCT: Group = Group("¡«¿©΄΅‘‚“„•‹\u{f8ff}", &[]);
const END_PUNCT: Group = Group("®»˝”›™", &[]);
const NUMERIC: Group = Group("²³¹±¼½¾×µ÷⁄∂∆∏∑√∞∩∫≈≠≡≤≥№", &[]);
// Letters that emoticons are drawn with, which may stand next to anything.
const KAOMOJI: Group = Group("ŐŌŪŲ°", &[('Ò', 'Ö'), ('Ù', 'Ü'), ('ò', 'ö'), ('ø', 'ü')]);
const UPPER_ACCENTED: Group = Group("ØÜÝĂĀĄĆČĎĐĘĚĒĖĞĢİĪĶĹĽŁĻŃŇŅŒŘŚŞŠŢŤŮŰŸŹŻŽҐ", &[('À', 'Ñ')]);
const LOWER_ACCENTED: Group = Group("ßăąāćčďđęěēėğģįīķĺľłļœŕśşšťüźżžґﬁﬂ", &[('à', 'ñ')]);
const UPPER_COMMON: Group = Group("ÞΆΈΉΊΌΎΏΪΫ", &[('Α', 'Ω'), ('Ё', 'Я')]);
const LOWER_COMMON: Group = Group("άέήίΰ", &[('α', 'ω'), ('а', 'џ')]);
const BOX: Group = Group("│┌┐┘├┤┬┼▀▄█▌▐░▒▓", &[('═', '╬')]);

fn class(groups: &[&Group], extra: &str) -> String {
    let mut s = String::from("[");
    for g in groups {
        s.push_str(&g.class());
    }
    for c in extra.chars() {
        s.push_str(&format!("\\x{{{:x}}}", c as u32));
    }
    s.push(']');
    s
}

fn pattern() -> String {
    let (c1, bad, law, cur) = (&C1, &BAD, &LAW, &CURRENCY);
    let (sp, ep, num, kao) = (&START_PUNCT, &END_PUNCT, &NUMERIC, &KAOMOJI);
    let (ua, la, uc, lc, bx, com) = (
        &UPPER_ACCENTED,
        &LOWER_ACCENTED,
        &UPPER_COMMON,
        &LOWER_COMMON,
        &BOX,
        &COMMON,
    );
    let k = |g: &[&Group]| class(g, "");
    let kx = |g: &[&Group], x: &str| class(g, x);
    // Python's `\s` (str.isspace) also has U+001C..U+001F; its `\w` is letters, numbers and `_`.
    let ws = r"[\s\x1c-\x1f]";
    let word = r"[\p{L}\p{N}_]";
    let arabic = kx(&[com, cur, bad, num, sp], "ŸŠ®°µ»");
    let alts: Vec<String> = vec![
        k(&[c1]),
        format!(
            "{}{}",
            k(&[bad, la, ua, bx, sp, ep, cur, num, law]),
            k(&[bad])
        ),
        format!("[a-zA-Z]{}{}", k(&[lc, uc]), k(&[bad])),
        format!("{}{}", k(&[bad]), k(&[la, ua, bx, sp, ep, cur, num, law])),
        format!("{}{}", k(&[la, lc, bx, ep, cur, num]), k(&[ua])),
        format!("{}{}", k(&[bx, ep, cur, num]), k(&[la])),
        format!("{}{}", k(&[la, bx, ep]), k(&[cur])),
        format!("{ws}{}{}", k(&[ua]), k(&[cur])),
        format!("{}{}", k(&[ua, bx]), k(&[num, law])),
        format!("{}{}{}", k(&[la, ua, bx, cur, ep]), k(&[sp]), k(&[num])),
        format!(
            "{}{}{}",
            k(&[la, ua, cur, num, bx, law]),
            k(&[ep]),
            k(&[sp])
        ),
        format!("{}{}", k(&[cur, num, bx]), k(&[sp])),
        format!("[a-z]{}{}", k(&[ua]), k(&[sp, cur])),
        format!("{}{}", k(&[bx]), k(&[kao])),
        format!("{}{}", k(&[la, ua, cur, num, sp, ep, law]), k(&[bx])),
        format!("{}{}", k(&[bx]), k(&[ep])),
        format!("{}{}{word}", k(&[la, ua]), k(&[sp, ep])),
        "[Œœ][^A-Za-z]".into(),
        format!("{}°", k(&[ua])),
        format!("[ÂÃÎÐ]{}", kx(&[sp, ep], "€œŠš¢£Ÿž\u{a0}\u{ad}®©°·»–—´")),
        "×[²³]".into(),
        format!("[ØÙ]{arabic}[ØÙ]{arabic}"),
        "à[²µ¹¼½¾]".into(),
        "√[±∂†≠®™´≤≥¥µø]".into(),
        "≈[°¢]".into(),
        "‚Ä[ìîïòôúùû†°¢π]".into(),
        "‚[âó][àä°ê]".into(),
        "вЂ".into(),
        format!("[ВГРС]{}[ВГРС]", kx(&[c1, bad, sp, ep, cur], "°µ")),
        "ГўВЂВ.[A-Za-z ]".into(),
        "Ã[\u{a0}¡]".into(),
        format!("[a-z]{ws}?[ÃÂ] "),
        "^[ÃÂ] ".into(),
        format!("[a-z.,?!{}]Â[ {}{}]", ep.class(), sp.class(), ep.class()),
        "β€[™\u{a0}Ά\u{ad}®°]".into(),
        format!("[ΒΓΞΟ]{}[ΒΓΞΟ]", kx(&[c1, bad, sp, ep, cur], "°")),
        "ā€".into(),
    ];
    alts.join("|")
}

fn regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(&pattern()).expect("the badness pattern compiles"))
}

/// ftfy's `is_bad`: whether `text` has a sequence that looks like mojibake.
pub fn is_bad(text: &str) -> bool {
    regex().is_match(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_mojibake_is_bad() {
        assert!(is_bad("doesnâ€™t"));
        assert!(is_bad("cafÃ©"));
        assert!(is_bad("Ã la mode"));
        assert!(is_bad("\u{85}"));
        assert!(!is_bad("café"));
        assert!(!is_bad("naïve résumé"));
        assert!(!is_bad("Москва"));
        assert!(!is_bad("¯\\_(ツ)_/¯"));
    }
}
