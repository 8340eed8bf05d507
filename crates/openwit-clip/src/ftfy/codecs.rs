//! The single-byte encodings ftfy re-encodes mojibake with, and its UTF-8 variant decoder.
//!
//! The tables come from `encoding_rs` (WHATWG's definitions of the Windows code pages, ISO
//! 8859-2 and Mac Roman) and, for code page 437, from a table generated with Python's `codecs`
//! (`scripts/gen_cp437.py`). ftfy's "sloppy" code pages decode the bytes a code page leaves
//! unassigned as the Latin-1 character of the same number, and byte 0x1A as U+FFFD (so that a
//! replacement character can be encoded as a placeholder byte).

use std::collections::HashMap;
use std::sync::OnceLock;

use super::cp437::CP437_HIGH;

/// A single-byte encoding, in the order ftfy tries them on mojibake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Charmap {
    /// ISO 8859-1: byte n is U+00nn.
    Latin1,
    /// Windows-1252, holes as Latin-1, 0x1A as U+FFFD.
    SloppyWindows1252,
    /// Windows-1251 (Cyrillic), sloppy.
    SloppyWindows1251,
    /// Windows-1250 (Central European), sloppy.
    SloppyWindows1250,
    /// Windows-1253 (Greek), sloppy.
    SloppyWindows1253,
    /// Windows-1254 (Turkish), sloppy.
    SloppyWindows1254,
    /// Windows-1257 (Baltic), sloppy.
    SloppyWindows1257,
    /// ISO 8859-2.
    Iso8859_2,
    /// Mac OS Roman.
    MacRoman,
    /// IBM PC code page 437.
    Cp437,
}

impl Charmap {
    /// ftfy's `CHARMAP_ENCODINGS`, in its order.
    pub const ALL: [Charmap; 10] = [
        Charmap::Latin1,
        Charmap::SloppyWindows1252,
        Charmap::SloppyWindows1251,
        Charmap::SloppyWindows1250,
        Charmap::SloppyWindows1253,
        Charmap::SloppyWindows1254,
        Charmap::SloppyWindows1257,
        Charmap::Iso8859_2,
        Charmap::MacRoman,
        Charmap::Cp437,
    ];

    /// The codec's name in Python (`latin-1`, `sloppy-windows-1252`, ..., `cp437`).
    pub fn python_name(self) -> &'static str {
        match self {
            Charmap::Latin1 => "latin-1",
            Charmap::SloppyWindows1252 => "sloppy-windows-1252",
            Charmap::SloppyWindows1251 => "sloppy-windows-1251",
            Charmap::SloppyWindows1250 => "sloppy-windows-1250",
            Charmap::SloppyWindows1253 => "sloppy-windows-1253",
            Charmap::SloppyWindows1254 => "sloppy-windows-1254",
            Charmap::SloppyWindows1257 => "sloppy-windows-1257",
            Charmap::Iso8859_2 => "iso-8859-2",
            Charmap::MacRoman => "macroman",
            Charmap::Cp437 => "cp437",
        }
    }

    /// Whether unassigned bytes fall back to Latin-1 and 0x1A stands for U+FFFD.
    pub fn is_sloppy(self) -> bool {
        !matches!(
            self,
            Charmap::Latin1 | Charmap::Iso8859_2 | Charmap::MacRoman | Charmap::Cp437
        )
    }

    fn whatwg(self) -> Option<&'static encoding_rs::Encoding> {
        Some(match self {
            Charmap::SloppyWindows1252 => encoding_rs::WINDOWS_1252,
            Charmap::SloppyWindows1251 => encoding_rs::WINDOWS_1251,
            Charmap::SloppyWindows1250 => encoding_rs::WINDOWS_1250,
            Charmap::SloppyWindows1253 => encoding_rs::WINDOWS_1253,
            Charmap::SloppyWindows1254 => encoding_rs::WINDOWS_1254,
            Charmap::SloppyWindows1257 => encoding_rs::WINDOWS_1257,
            Charmap::Iso8859_2 => encoding_rs::ISO_8859_2,
            Charmap::MacRoman => encoding_rs::MACINTOSH,
            Charmap::Latin1 | Charmap::Cp437 => return None,
        })
    }

    fn build(self) -> Table {
        let mut decode = [char::MAX; 256];
        for b in 0..=255u8 {
            let c = if b < 0x80 {
                b as char
            } else if self == Charmap::Cp437 {
                CP437_HIGH[b as usize - 0x80]
            } else {
                self.whatwg()
                    .and_then(|e| {
                        e.decode_without_bom_handling_and_without_replacement(&[b])
                            .and_then(|s| s.chars().next())
                    })
                    .unwrap_or(b as char)
            };
            decode[b as usize] = c;
        }
        if self.is_sloppy() {
            decode[0x1a] = '\u{fffd}';
        }
        let encode = decode
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.is_ascii())
            .map(|(b, c)| (*c, b as u8))
            .collect();
        Table { decode, encode }
    }

    fn table(self) -> &'static Table {
        static TABLES: OnceLock<Vec<Table>> = OnceLock::new();
        let all = TABLES.get_or_init(|| Charmap::ALL.iter().map(|c| c.build()).collect());
        // ALL lists the variants in declaration order.
        &all[self as usize]
    }

    /// What each byte decodes to.
    pub fn decode_table(self) -> &'static [char; 256] {
        &self.table().decode
    }

    /// Decodes bytes (every byte decodes to something).
    pub fn decode(self, bytes: &[u8]) -> String {
        let t = &self.table().decode;
        bytes.iter().map(|b| t[*b as usize]).collect()
    }

    /// The byte for one character, if the encoding has it.
    #[inline]
    pub fn encode_char(self, c: char) -> Option<u8> {
        if c.is_ascii() {
            // In the sloppy code pages 0x1A is taken by U+FFFD.
            return (c != '\u{1a}' || !self.is_sloppy()).then_some(c as u8);
        }
        self.table().encode.get(&c).copied()
    }

    /// ftfy's `possible_encoding`: every character of `text` has a byte.
    pub fn can_encode(self, text: &str) -> bool {
        text.chars().all(|c| self.encode_char(c).is_some())
    }

    /// Encodes `text`, or `None` where a character has no byte.
    pub fn encode(self, text: &str) -> Option<Vec<u8>> {
        text.chars().map(|c| self.encode_char(c)).collect()
    }
}

struct Table {
    decode: [char; 256],
    encode: HashMap<char, u8>,
}

/// Python's strict `windows-1252` decoder over bytes that are all Latin-1 (the characters
/// U+0000..=U+00FF): `None` where a byte is one that Windows-1252 leaves unassigned.
pub fn latin1_as_strict_windows_1252(text: &str) -> Option<String> {
    let t = Charmap::SloppyWindows1252.decode_table();
    text.chars()
        .map(|c| {
            let b = c as usize;
            // The sloppy table keeps a C1 byte as itself exactly where Windows-1252 has a hole.
            if (0x80..0xa0).contains(&b) && t[b] == c {
                None
            } else if b < 0x80 {
                Some(c)
            } else {
                Some(t[b])
            }
        })
        .collect()
}

/// ftfy's `utf-8-variants` codec, decoding a whole byte string: standard UTF-8, plus CESU-8
/// (a supplementary character written as the UTF-8 of its two UTF-16 surrogates) and Java's
/// `C0 80` for U+0000. `None` where it is not decodable.
pub fn decode_utf8_variants(bytes: &[u8]) -> Option<String> {
    if !bytes.iter().any(|b| *b == 0xc0 || *b == 0xed) {
        return std::str::from_utf8(bytes).ok().map(str::to_string);
    }
    let mut out = String::with_capacity(bytes.len());
    let mut pos = 0;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        let special = rest.iter().position(|b| *b == 0xc0 || *b == 0xed);
        let cut = special.unwrap_or(rest.len());
        out.push_str(std::str::from_utf8(&rest[..cut]).ok()?);
        pos += cut;
        if special.is_none() {
            break;
        }
        let rest = &bytes[pos..];
        if rest[0] == 0xc0 {
            // The codec looks for `C0 (80|$)`, and Python's `$` also matches before a final
            // newline: `C0 0A` at the very end decodes to U+0000 as well.
            match rest.get(1) {
                Some(0x80) => {}
                Some(0x0a) if rest.len() == 2 => {}
                _ => return None,
            }
            out.push('\0');
            pos += 2;
        } else if rest.len() >= 6
            && (0xa0..=0xaf).contains(&rest[1])
            && (0x80..=0xbf).contains(&rest[2])
            && rest[3] == 0xed
            && (0xb0..=0xbf).contains(&rest[4])
            // `$` again: a final newline passes for the last continuation byte.
            && ((0x80..=0xbf).contains(&rest[5]) || rest[5] == 0x0a && rest.len() == 6)
        {
            let cp = (((rest[1] & 0x0f) as u32) << 16)
                + (((rest[2] & 0x3f) as u32) << 10)
                + (((rest[4] & 0x0f) as u32) << 6)
                + (rest[5] & 0x3f) as u32
                + 0x10000;
            out.push(char::from_u32(cp)?);
            pos += 6;
        } else {
            // An ordinary three-byte sequence led by ED (U+D000..=U+D7FF), or an error.
            let n = 3.min(rest.len());
            out.push_str(std::str::from_utf8(&rest[..n]).ok()?);
            pos += n;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sloppy_tables() {
        let t = Charmap::SloppyWindows1252.decode_table();
        assert_eq!(t[0x80], '€');
        assert_eq!(t[0x81], '\u{81}');
        assert_eq!(t[0x1a], '\u{fffd}');
        assert_eq!(Charmap::Latin1.decode_table()[0x1a], '\u{1a}');
        assert_eq!(Charmap::SloppyWindows1253.decode_table()[0xd2], 'Ò');
        assert_eq!(Charmap::Cp437.decode(b"\xc9\xcd\xbb"), "╔═╗");
        assert_eq!(
            Charmap::SloppyWindows1252.encode("â€™"),
            Some(vec![0xe2, 0x80, 0x99])
        );
        assert_eq!(Charmap::SloppyWindows1252.encode("\u{1a}"), None);
        for (i, cm) in Charmap::ALL.into_iter().enumerate() {
            assert_eq!(cm as usize, i);
            let t = cm.decode_table();
            for b in 0..=255u8 {
                assert_eq!(cm.encode_char(t[b as usize]), Some(b), "{cm:?} {b:#x}");
            }
        }
    }

    #[test]
    fn strict_windows_1252() {
        assert_eq!(
            latin1_as_strict_windows_1252("\u{80}a").as_deref(),
            Some("€a")
        );
        assert_eq!(latin1_as_strict_windows_1252("\u{81}"), None);
    }

    #[test]
    fn utf8_variants() {
        assert_eq!(
            decode_utf8_variants(b"\xed\xa0\xbd\xed\xb8\x8d").as_deref(),
            Some("\u{1f60d}")
        );
        assert_eq!(decode_utf8_variants(b"a\xc0\x80b").as_deref(), Some("a\0b"));
        assert_eq!(decode_utf8_variants(b"a\xc0\n").as_deref(), Some("a\0"));
        assert_eq!(decode_utf8_variants(b"a\xc0\nb"), None);
        assert_eq!(
            decode_utf8_variants(b"\xed\xa0\x86\xed\xb3\n").as_deref(),
            Some("\u{118ca}")
        );
        assert_eq!(decode_utf8_variants(b"\xed\xa0\x86\xed\xb3\nx"), None);
        assert_eq!(decode_utf8_variants(b"\xed\x95\x9c").as_deref(), Some("한"));
        assert_eq!(decode_utf8_variants(b"\xed\xa0\x80"), None);
        assert_eq!(decode_utf8_variants(b"\xc3"), None);
    }
}
