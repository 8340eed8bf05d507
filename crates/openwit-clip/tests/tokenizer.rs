//! Tokenizer parity with open_clip's `SimpleTokenizer`: 10,000+ generated captions (plain
//! English, other scripts, emoji (ZWJ sequences, skin tones, flags), HTML entities (also
//! double-escaped), curly quotes, full-width forms, ligatures, odd whitespace, control
//! characters, contractions, very long texts truncated to 77 with the end token kept), and
//! 10,000 hard ones (`mod hard`): mojibake of every common kind (UTF-8 read as Windows-1252,
//! Latin-1 and ftfy's other code pages, doubly encoded, cut, with C1 controls, with 0xA0 lost
//! to a space, with lost bytes as `�`/`?`, CESU-8), HTML references in every case, control,
//! zero-width and bidi characters, terminal escapes, ligatures, full-width forms, every script.

mod common;

use openwit_clip::tokenizer::{EOT, SOT, Tokenizer};
use rand::{Rng, SeedableRng};

const WORDS: &[&str] = &[
    "a",
    "photo",
    "of",
    "the",
    "red",
    "circle",
    "dog",
    "running",
    "on",
    "beach",
    "sunset",
    "over",
    "mountains",
    "vintage",
    "car",
    "parked",
    "street",
    "close-up",
    "portrait",
    "woman",
    "man",
    "child",
    "playing",
    "with",
    "ball",
    "green",
    "field",
    "city",
    "skyline",
    "at",
    "night",
    "bowl",
    "ramen",
    "noodles",
    "logo",
    "design",
    "illustration",
    "vector",
    "icon",
    "set",
    "watercolor",
    "painting",
    "abstract",
    "background",
    "texture",
    "wooden",
    "table",
    "kitchen",
    "interior",
    "modern",
    "house",
    "garden",
    "flowers",
    "bloom",
    "spring",
    "2019",
    "4k",
    "HD",
    "1080p",
    "iPhone",
    "USB-C",
    "T-shirt",
    "e-mail",
    "Wi-Fi",
    "COVID-19",
    "3.5mm",
    "$19.99",
    "50%",
    "#tbt",
    "@user",
    "x-ray",
    "DNA",
    "NASA",
    "McDonald's",
    "O'Brien",
    "rock'n'roll",
];

const INTL: &[&str] = &[
    "café",
    "naïve",
    "Müller",
    "São",
    "Paulo",
    "Zürich",
    "façade",
    "jalapeño",
    "Ærø",
    "Łódź",
    "İstanbul",
    "straße",
    "ΣΟΦΙΑ",
    "Αθήνα",
    "καλημέρα",
    "Москва",
    "привет",
    "мир",
    "東京",
    "タワー",
    "ラーメン",
    "北京",
    "你好",
    "世界",
    "서울",
    "한국어",
    "القاهرة",
    "مرحبا",
    "עברית",
    "हिन्दी",
    "नमस्ते",
    "ไทย",
    "Việt",
    "Nam",
    "tiếng",
    "ⅷ",
    "①",
    "½",
    "²",
    "٣",
    "߷",
];

const EMOJI: &[&str] = &[
    "😀",
    "🐶",
    "🍜",
    "❤️",
    "👍🏽",
    "👨‍👩‍👧‍👦",
    "🏳️‍🌈",
    "🇯🇵",
    "🇫🇷",
    "✨",
    "🔥",
    "🎉",
    "☕",
    "🌍",
    "🤖",
    "👩🏻‍💻",
];

const ENTITIES: &[&str] = &[
    "&amp;",
    "&lt;",
    "&gt;",
    "&quot;",
    "&#39;",
    "&#x27;",
    "&nbsp;",
    "&eacute;",
    "&amp;amp;",
    "&copy;",
    "&mdash;",
    "&hellip;",
    "&trade;",
    "&#8217;",
    "&#x1F600;",
    "&amp;quot;",
    "&frac12;",
    "&euro;",
    "&bogus;",
    "&amp",
    "&lt;b&gt;",
    "&#0;",
    "&#128;",
];

const ODD: &[&str] = &[
    "\u{2018}",
    "\u{2019}",
    "\u{201c}",
    "\u{201d}",
    "\u{ff28}\u{ff25}\u{ff2c}\u{ff2c}\u{ff2f}",
    "\u{ff11}\u{ff12}",
    "\u{fb01}ne",
    "\u{fb02}ower",
    "\u{3000}",
    "\u{a0}",
    "\t",
    "\n",
    "\r\n",
    "\u{2028}",
    "\u{200b}",
    "\u{feff}",
    "\u{7}",
    "\u{1b}[31m",
    "\u{1b}[0m",
    "--",
    "...",
    "!!!",
    "?!",
    "(",
    ")",
    "[",
    "]",
    "\"",
    "'",
    "/",
    "\\",
    "|",
    "*",
    "~",
    "<",
    ">",
    "=",
    "+",
    "_",
    "`",
    "^",
    "{",
    "}",
    "e\u{301}",
    "<start_of_text>",
    "<end_of_text>",
    "it's",
    "WE'LL",
    "they're",
    "I'M",
    "you'd",
    "can't",
    "Q&A",
    "AT&T",
];

fn caption(rng: &mut rand_chacha::ChaCha8Rng) -> String {
    let long = rng.random_bool(0.08);
    let n = if long {
        rng.random_range(60..200)
    } else {
        rng.random_range(1..18)
    };
    let mut s = String::new();
    for i in 0..n {
        let pick = rng.random_range(0..100);
        let piece = match pick {
            0..=54 => WORDS[rng.random_range(0..WORDS.len())],
            55..=69 => INTL[rng.random_range(0..INTL.len())],
            70..=79 => EMOJI[rng.random_range(0..EMOJI.len())],
            80..=87 => ENTITIES[rng.random_range(0..ENTITIES.len())],
            _ => ODD[rng.random_range(0..ODD.len())],
        };
        let piece = if rng.random_bool(0.1) {
            piece.to_uppercase()
        } else {
            piece.to_string()
        };
        if i > 0 && !rng.random_bool(0.1) {
            s.push(' ');
        }
        s.push_str(&piece);
    }
    if rng.random_bool(0.1) {
        s = format!("  {s}  ");
    }
    s
}

#[test]
fn same_ids_as_open_clip_on_10000_captions() {
    let Some(py) = common::python_path() else {
        return;
    };
    let tok = Tokenizer::from_default().unwrap();
    assert_eq!(tok.vocab_size(), 49408);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut captions: Vec<String> = (0..10_000).map(|_| caption(&mut rng)).collect();
    captions.push(String::new());
    captions.push("a".repeat(1000));
    let dir = tempfile::tempdir().unwrap();
    let cap_path = dir.path().join("captions.json");
    std::fs::write(&cap_path, serde_json::to_string(&captions).unwrap()).unwrap();
    let out = dir.path().join("ids.json");
    common::reference(
        &py,
        &["tokens", cap_path.to_str().unwrap(), out.to_str().unwrap()],
    );
    let want: Vec<Vec<i64>> =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(want.len(), captions.len());
    let mut bad = Vec::new();
    let mut truncated = 0;
    for (c, w) in captions.iter().zip(&want) {
        let got = tok.tokenize(c, 77);
        if w[76] == EOT {
            truncated += 1;
        }
        if &got != w {
            bad.push((c.clone(), got, w.clone()));
        }
    }
    for (c, g, w) in bad.iter().take(5) {
        eprintln!("caption {c:?}\n  ours   {g:?}\n  theirs {w:?}");
    }
    assert!(
        bad.is_empty(),
        "{} of {} captions differ",
        bad.len(),
        captions.len()
    );
    assert!(
        truncated > 500,
        "the long captions must exercise truncation ({truncated})"
    );
    assert!(want.iter().all(|w| w[0] == SOT));
}

#[test]
fn tokenizes_known_captions() {
    let Ok(tok) = Tokenizer::from_default() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have the vocabulary"
        );
        return;
    };
    let ids = tok.tokenize("a photo of a cat", 77);
    assert_eq!(ids[0], SOT);
    assert_eq!(ids.iter().position(|&t| t == EOT), Some(6));
    assert!(ids[7..].iter().all(|&t| t == 0));
    // Cleaning: entities, case and spacing do not change the ids.
    assert_eq!(
        tok.encode("A  Photo\tof &amp; cat"),
        tok.encode("a photo of & cat")
    );
    let long = tok.tokenize(&"word ".repeat(200), 77);
    assert_eq!(long.len(), 77);
    assert_eq!(long[76], EOT);
}

/// Hard captions: mojibake of every common kind, HTML references in every case, control,
/// zero-width and bidi characters, terminal escapes, ligatures, full-width forms, line breaks,
/// every script, and text that only looks like mojibake.
mod hard {
    use openwit_clip::ftfy::codecs::Charmap;
    use rand::Rng;
    use rand_chacha::ChaCha8Rng;

    /// Correct text that mojibake is made of.
    const SOURCES: &[&str] = &[
        "The Mona Lisa doesn\u{2019}t have eyebrows.",
        "\u{201c}quoted\u{201d}",
        "\u{2018}single\u{2019}",
        "it\u{2019}s",
        "em\u{2014}dash",
        "en\u{2013}dash",
        "wait\u{2026}",
        "\u{2022} bullet",
        "\u{20ac}100",
        "Brand\u{2122}",
        "\u{a9}2020",
        "caf\u{e9}",
        "na\u{ef}ve",
        "r\u{e9}sum\u{e9}",
        "M\u{fc}ller",
        "S\u{e3}o Paulo",
        "Z\u{fc}rich",
        "\u{e0} la carte",
        "voil\u{e0} le travail",
        "\u{e0}s vezes",
        "f\u{e0}cil",
        "jalape\u{f1}o",
        "\u{141}\u{f3}d\u{17a}",
        "stra\u{df}e",
        "\u{153}uvre",
        "\u{c0}\u{c9}\u{ce}\u{d5}\u{dc}",
        "NA\u{c7}\u{c3}O",
        "\u{bd} price",
        "20\u{b0}C",
        "\u{b1}5",
        "3 \u{d7} 2",
        "non\u{a0}breaking",
        "\u{a0}",
        "\u{2116}5",
        "\u{2714} done",
        "\u{2605}\u{2605}\u{2605}",
        "\u{2192}",
        "\u{3c4}\u{3b9} \u{3ba}\u{3ac}\u{3bd}\u{3b5}\u{3b9}\u{3c2}",
        "\u{395}\u{3bb}\u{3bb}\u{3b7}\u{3bd}\u{3b9}\u{3ba}\u{3ac}",
        "\u{41c}\u{43e}\u{441}\u{43a}\u{432}\u{430}",
        "\u{43f}\u{440}\u{438}\u{432}\u{435}\u{442}",
        "\u{6771}\u{4eac}\u{30bf}\u{30ef}\u{30fc}",
        "\u{30e9}\u{30fc}\u{30e1}\u{30f3}",
        "\u{4f60}\u{597d}",
        "\u{c11c}\u{c6b8}",
        "\u{645}\u{631}\u{62d}\u{628}\u{627}",
        "\u{5e2}\u{5d1}\u{5e8}\u{5d9}\u{5ea}",
        "\u{939}\u{93f}\u{928}\u{94d}\u{926}\u{940}",
        "\u{e44}\u{e17}\u{e22}",
        "Vi\u{1ec7}t Nam",
        "\u{1f600}",
        "\u{1f44d}\u{1f3fd}",
        "\u{1f1ef}\u{1f1f5}",
        "\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}",
        "\u{2764}\u{fe0f}",
        "\u{ff08}\u{ff3e}\u{ff3f}\u{ff3e}\u{ff09}",
        "\u{af}\\_(\u{30c4})_/\u{af}",
        "\u{10348}\u{1d11e}",
        "\u{e9}\u{301}",
        "\u{fb01}ne",
        "\u{1d400}\u{1d401}",
        "\u{a7}3 \u{b6}2",
        "\u{a3}5 \u{a5}9 \u{a2}",
        "\u{bf}Qu\u{e9}? \u{a1}S\u{ed}!",
        "\u{ab}guillemets\u{bb}",
        "\u{2039}x\u{203a}",
        "\u{2030}",
        "\u{2020}\u{2021}",
        "\u{192}(x)",
        "\u{2c6}\u{2dc}",
        "\u{c5}ngstr\u{f6}m",
        "\u{cd}sland",
        "\u{d0}\u{f0}\u{de}\u{fe}",
        "\u{11f}\u{130}\u{131}\u{15f}",
        "\u{10d}\u{161}\u{17e}",
        "\u{101}\u{113}\u{12b}\u{16b}",
    ];

    /// Text that looks odd but is not mojibake (ftfy should leave most of it alone).
    const LOOKALIKES: &[&str] = &[
        "\u{af}\\_(\u{30c4})_/\u{af}",
        "(\u{256f}\u{b0}\u{25a1}\u{b0})\u{256f}\u{fe35} \u{253b}\u{2501}\u{253b}",
        "\u{20ac}100 \u{2022} \u{a3}50",
        "\u{c3} la",
        "\u{c3}s",
        "\u{c3}quele",
        "NA\u{c3}O",
        "\u{c2}\u{a0}",
        "\u{c2}\u{bf}",
        "\u{ca}tre",
        "\u{f6}\u{df}",
        "\u{b0}\u{b1}\u{b2}",
        "\u{2552}\u{2550}\u{2555}",
        "\u{2593}\u{2592}\u{2591}",
        "\u{3a3}\u{3a9}\u{3a0}",
        "\u{412}\u{413}\u{420}\u{421}",
        "\u{d8}\u{d9}",
        "\u{153}il",
        "\u{152}9",
        "\u{221a}\u{b1}",
        "\u{2248}\u{b0}",
        "\u{201a}\u{c4}\u{f4}",
        "\u{432}\u{402}",
        "\u{3b2}\u{20ac}\u{2122}",
        "\u{101}\u{20ac}",
        "\u{e0}\u{b2}",
        "\u{d7}\u{b2}",
        "\u{c9}\u{b0}",
        "ma\u{f1}ana \u{a9}",
        "x\u{c3} y",
        "\u{ef}\u{bf}\u{bd}",
        "\u{fffd}",
        "\u{e2}\u{20ac}\u{fffd}",
        "\u{e2}\u{20ac}?",
        "\u{c3}?",
        "\u{c3}\u{a9}\u{c0}",
        "\u{c3}\u{20ac}",
    ];

    const ENTITY_NAMES: &[&str] = &[
        "amp",
        "lt",
        "gt",
        "quot",
        "apos",
        "nbsp",
        "eacute",
        "Eacute",
        "szlig",
        "ntilde",
        "Ntilde",
        "copy",
        "reg",
        "hellip",
        "mdash",
        "ndash",
        "rsquo",
        "lsquo",
        "ldquo",
        "rdquo",
        "euro",
        "trade",
        "frac12",
        "deg",
        "times",
        "divide",
        "alpha",
        "Alpha",
        "sigma",
        "Sigma",
        "notin",
        "not",
        "ETH",
        "eth",
        "THORN",
        "thorn",
        "aelig",
        "AElig",
        "oelig",
        "OElig",
        "hearts",
        "check",
        "checkmark",
        "Jscr",
        "HilbertSpace",
        "NewLine",
        "Tab",
        "macr",
        "acirc",
        "atilde",
        "Atilde",
        "sup3",
        "sup2",
        "middot",
        "laquo",
        "raquo",
        "iexcl",
        "ccedil",
        "Ccedil",
        "uuml",
        "ouml",
        "Ouml",
        "aring",
        "Aring",
        "yuml",
        "Yuml",
        "lambda",
        "Lambda",
        "ge",
        "le",
        "ne",
        "rarr",
        "larr",
        "harr",
        "bull",
        "dagger",
        "Dagger",
        "permil",
        "lsaquo",
        "rsaquo",
        "sbquo",
        "bdquo",
        "circ",
        "tilde",
        "fnof",
        "shy",
        "zwj",
        "zwnj",
        "lrm",
        "rlm",
        "emsp",
        "thinsp",
        "ensp",
        "cent",
        "pound",
        "yen",
        "sect",
        "para",
        "micro",
        "plusmn",
        "frac14",
        "frac34",
        "ordf",
        "ordm",
        "iquest",
        "uml",
        "cedil",
        "acute",
        "brvbar",
        "curren",
        "infin",
        "sum",
        "prod",
        "radic",
        "asymp",
        "bogus",
        "ampx",
        "notit",
        "ltimes",
        "AMP",
        "LT",
        "GT",
        "QUOT",
        "COPY",
        "REG",
        "semi",
        "colon",
        "comma",
        "period",
        "excl",
        "quest",
        "num",
        "dollar",
        "percnt",
        "ast",
        "lpar",
        "rpar",
        "lowbar",
        "verbar",
        "Hat",
        "grave",
        "nsubE",
        "fjlig",
        "ThickSpace",
    ];

    const CONTROLS: &[char] = &[
        '\u{0}',
        '\u{1}',
        '\u{7}',
        '\u{8}',
        '\u{b}',
        '\u{c}',
        '\u{e}',
        '\u{1a}',
        '\u{1b}',
        '\u{1c}',
        '\u{1d}',
        '\u{1e}',
        '\u{1f}',
        '\u{7f}',
        '\u{80}',
        '\u{81}',
        '\u{85}',
        '\u{8d}',
        '\u{90}',
        '\u{91}',
        '\u{92}',
        '\u{93}',
        '\u{94}',
        '\u{96}',
        '\u{97}',
        '\u{99}',
        '\u{9d}',
        '\u{9f}',
        '\u{ad}',
        '\u{34f}',
        '\u{61c}',
        '\u{180e}',
        '\u{200b}',
        '\u{200c}',
        '\u{200d}',
        '\u{200e}',
        '\u{200f}',
        '\u{202a}',
        '\u{202b}',
        '\u{202c}',
        '\u{202d}',
        '\u{202e}',
        '\u{2060}',
        '\u{2061}',
        '\u{2063}',
        '\u{2066}',
        '\u{2067}',
        '\u{2068}',
        '\u{2069}',
        '\u{206a}',
        '\u{206b}',
        '\u{206f}',
        '\u{feff}',
        '\u{fff9}',
        '\u{fffa}',
        '\u{fffb}',
        '\u{fffc}',
        '\u{fffd}',
        '\u{e0001}',
        '\u{e0041}',
        '\u{e007f}',
        '\u{1d173}',
    ];

    const ESCAPES: &[&str] = &[
        "\u{1b}[31m",
        "\u{1b}[1;32;40m",
        "\u{1b}[0m",
        "\u{1b}[m",
        "\u{1b}[K",
        "\u{1b}[2J",
        "\u{1b}[38;5;196m",
        "\u{1b}[?25l",
        "\u{1b}]0;title\u{7}",
        "\u{1b}(B",
        "\u{1b}[",
        "\u{1b}[\u{661}m",
    ];

    const BREAKS: &[&str] = &[
        "\n", "\r", "\r\n", "\n\n", "\u{2028}", "\u{2029}", "\u{85}", "\u{b}", "\u{c}", "\t",
        "\u{a0}", "\u{1680}", "\u{2002}", "\u{2009}", "\u{200a}", "\u{202f}", "\u{205f}",
        "\u{3000}", "  ",
    ];

    const ODD: &[&str] = &[
        "\u{132}",
        "\u{133}",
        "\u{149}",
        "\u{1c4}",
        "\u{1c5}",
        "\u{1c6}",
        "\u{1c7}",
        "\u{1c8}",
        "\u{1c9}",
        "\u{1ca}",
        "\u{1cb}",
        "\u{1cc}",
        "\u{1f1}",
        "\u{1f2}",
        "\u{1f3}",
        "\u{fb00}",
        "\u{fb01}",
        "\u{fb02}",
        "\u{fb03}",
        "\u{fb04}",
        "\u{fb05}",
        "\u{fb06}",
        "\u{fb13}",
        "\u{e6}",
        "\u{2bc}",
        "\u{2018}",
        "\u{2019}",
        "\u{201a}",
        "\u{201b}",
        "\u{201c}",
        "\u{201d}",
        "\u{201e}",
        "\u{201f}",
        "\u{2032}",
        "\u{2033}",
        "\u{300c}",
        "<b>",
        "</i>",
        "<",
        ">",
        "&",
        "&&",
        "&;",
        "&#;",
        "&#x;",
        "&#",
        "; ",
        "it's",
        "I'M",
        "we'll",
        "<start_of_text>",
        "<end_of_text>",
        "\u{130}stanbul",
        "\u{3a3}\u{39f}\u{3a6}\u{399}\u{391}",
        "\u{1e9e}",
        "\u{1f88}",
        "\u{10400}\u{10428}",
        "\u{1e900}",
        "\u{2160}\u{2167}",
        "\u{2460}",
        "\u{663}",
        "\u{ff10}\u{ff19}",
    ];

    /// Fully assigned runs of code points (Unicode 14 or older) in many scripts.
    const SCRIPTS: &[(u32, u32)] = &[
        (0x41, 0x5a),
        (0xc0, 0xff),
        (0x100, 0x17f),
        (0x180, 0x24f),
        (0x250, 0x2af),
        (0x300, 0x36f),
        (0x391, 0x3a1),
        (0x3a3, 0x3ff),
        (0x400, 0x52f),
        (0x531, 0x556),
        (0x561, 0x587),
        (0x5d0, 0x5ea),
        (0x591, 0x5bd),
        (0x620, 0x64a),
        (0x64b, 0x65f),
        (0x660, 0x669),
        (0x671, 0x6d3),
        (0x710, 0x72c),
        (0x780, 0x7a5),
        (0x7ca, 0x7ea),
        (0x800, 0x815),
        (0x904, 0x939),
        (0x93e, 0x94d),
        (0x966, 0x96f),
        (0x995, 0x9a8),
        (0x9be, 0x9c4),
        (0xa15, 0xa28),
        (0xa95, 0xaa8),
        (0xb15, 0xb28),
        (0xbae, 0xbb9),
        (0xc15, 0xc28),
        (0xc95, 0xca8),
        (0xd15, 0xd3a),
        (0xd9a, 0xdb1),
        (0xe01, 0xe3a),
        (0xe40, 0xe4e),
        (0xe94, 0xe97),
        (0xf40, 0xf47),
        (0xf71, 0xf84),
        (0x1000, 0x102a),
        (0x10a0, 0x10c5),
        (0x10d0, 0x10fa),
        (0x1100, 0x1112),
        (0x1161, 0x1175),
        (0x1200, 0x1248),
        (0x13a0, 0x13f5),
        (0x1401, 0x166c),
        (0x1681, 0x169a),
        (0x16a0, 0x16ea),
        (0x1700, 0x170c),
        (0x1780, 0x17b3),
        (0x1820, 0x1877),
        (0x1900, 0x191e),
        (0x1950, 0x196d),
        (0x1b05, 0x1b33),
        (0x1b83, 0x1ba0),
        (0x1c00, 0x1c23),
        (0x1c5a, 0x1c7d),
        (0x1c90, 0x1cba),
        (0x1e00, 0x1eff),
        (0x1f00, 0x1f15),
        (0x1f80, 0x1fb4),
        (0x2070, 0x2071),
        (0x2100, 0x214f),
        (0x2150, 0x2189),
        (0x2190, 0x21ff),
        (0x2200, 0x22ff),
        (0x2460, 0x24ff),
        (0x2500, 0x259f),
        (0x2600, 0x26ff),
        (0x2c00, 0x2c2e),
        (0x2c30, 0x2c5e),
        (0x2c80, 0x2ce4),
        (0x2d30, 0x2d67),
        (0x3041, 0x3096),
        (0x30a1, 0x30fa),
        (0x3105, 0x312f),
        (0x3131, 0x318e),
        (0x3200, 0x321e),
        (0x3300, 0x33ff),
        (0x4e00, 0x9fa5),
        (0xa000, 0xa48c),
        (0xa500, 0xa62b),
        (0xa640, 0xa66e),
        (0xa6a0, 0xa6ef),
        (0xa722, 0xa787),
        (0xa984, 0xa9b2),
        (0xaa00, 0xaa28),
        (0xab70, 0xabbf),
        (0xabc0, 0xabe2),
        (0xac00, 0xd7a3),
        (0xf900, 0xfa2d),
        (0xfb1d, 0xfb36),
        (0xfb50, 0xfbb1),
        (0xfe70, 0xfe74),
        (0xfe76, 0xfefc),
        (0xff01, 0xffbe),
        (0xffc2, 0xffc7),
        (0xffe0, 0xffe6),
        (0xffe8, 0xffee),
        (0x10000, 0x1000b),
        (0x10330, 0x1034a),
        (0x10400, 0x1044f),
        (0x104b0, 0x104d3),
        (0x104d8, 0x104fb),
        (0x10c80, 0x10cb2),
        (0x10cc0, 0x10cf2),
        (0x118a0, 0x118df),
        (0x12000, 0x12399),
        (0x13000, 0x1342e),
        (0x16e40, 0x16e7f),
        (0x1d400, 0x1d454),
        (0x1e900, 0x1e943),
        (0x1f300, 0x1f64f),
        (0x1f680, 0x1f6c5),
        (0x1f900, 0x1f9ff),
        (0x20000, 0x2a6d6),
    ];

    fn pick<'a, T>(rng: &mut ChaCha8Rng, xs: &'a [T]) -> &'a T {
        &xs[rng.random_range(0..xs.len())]
    }

    fn script_run(rng: &mut ChaCha8Rng) -> String {
        let (a, b) = *pick(rng, SCRIPTS);
        let n = rng.random_range(1..8);
        (0..n)
            .map(|_| char::from_u32(rng.random_range(a..=b)).unwrap())
            .collect()
    }

    fn correct_text(rng: &mut ChaCha8Rng) -> String {
        match rng.random_range(0..10) {
            0..=6 => pick(rng, SOURCES).to_string(),
            7 => script_run(rng),
            _ => format!("{} {}", pick(rng, SOURCES), pick(rng, super::WORDS)),
        }
    }

    /// UTF-8 bytes as a single-byte codec reads them.
    fn misread(rng: &mut ChaCha8Rng, text: &str) -> String {
        let cm = match rng.random_range(0..20) {
            0..=8 => Charmap::SloppyWindows1252,
            9..=12 => Charmap::Latin1,
            _ => *pick(rng, &Charmap::ALL),
        };
        let mut s = cm.decode(text.as_bytes());
        if cm == Charmap::SloppyWindows1252 && rng.random_bool(0.2) {
            // Python's or a browser's windows-1252 with errors="replace": holes become U+FFFD
            // (or `?`), and the 0x1A stand-in of the sloppy codec is an ordinary control again.
            let sub = if rng.random_bool(0.7) {
                '\u{fffd}'
            } else {
                '?'
            };
            s = s
                .chars()
                .map(|c| match c {
                    '\u{81}' | '\u{8d}' | '\u{8f}' | '\u{90}' | '\u{9d}' => sub,
                    '\u{fffd}' => '\u{1a}',
                    c => c,
                })
                .collect();
        }
        s
    }

    /// CESU-8: a supplementary character as the UTF-8 of its two UTF-16 halves.
    fn cesu8(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for c in text.chars() {
            if (c as u32) < 0x10000 {
                let mut b = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            } else {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let u = *u as u32;
                    out.extend_from_slice(&[
                        0xe0 | (u >> 12) as u8,
                        0x80 | ((u >> 6) & 0x3f) as u8,
                        0x80 | (u & 0x3f) as u8,
                    ]);
                }
            }
        }
        out
    }

    fn mojibake(rng: &mut ChaCha8Rng) -> String {
        let src = correct_text(rng);
        let mut s = match rng.random_range(0..20) {
            // Doubly (or triply) encoded.
            0..=2 => {
                let once = misread(rng, &src);
                let twice = misread(rng, &once);
                if rng.random_bool(0.2) {
                    misread(rng, &twice)
                } else {
                    twice
                }
            }
            3 => Charmap::SloppyWindows1252.decode(&cesu8(&src)),
            4 => {
                let mut b = src.clone().into_bytes();
                b.extend_from_slice(b"\xc0\x80");
                Charmap::Latin1.decode(&b)
            }
            _ => misread(rng, &src),
        };
        // Non-breaking spaces (byte 0xA0) lost to plain spaces.
        if rng.random_bool(0.25) {
            s = s.replace('\u{a0}', " ");
        }
        // Cut in the middle of a sequence.
        if rng.random_bool(0.15) {
            let chars: Vec<char> = s.chars().collect();
            let a = rng.random_range(0..=chars.len().min(2));
            let b = chars.len() - rng.random_range(0..=chars.len().saturating_sub(a).min(2));
            s = chars[a..b].iter().collect();
        }
        match rng.random_range(0..20) {
            0 => s.to_uppercase(),
            1 => s.to_lowercase(),
            2 => s.replace(' ', "\u{a0}"),
            _ => s,
        }
    }

    fn random_case(rng: &mut ChaCha8Rng, s: &str) -> String {
        match rng.random_range(0..6) {
            0 => s.to_uppercase(),
            1 => s.to_lowercase(),
            2 => {
                let mut c = s.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect())
                    .unwrap_or_default()
            }
            3 => s
                .chars()
                .map(|c| {
                    if rng.random_bool(0.5) {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    }
                })
                .collect(),
            _ => s.to_string(),
        }
    }

    fn entity(rng: &mut ChaCha8Rng) -> String {
        let semi = if rng.random_bool(0.8) { ";" } else { "" };
        let body = match rng.random_range(0..10) {
            0..=4 => {
                let name = *pick(rng, ENTITY_NAMES);
                format!("&{}{semi}", random_case(rng, name))
            }
            5..=7 => {
                let n: u32 = match rng.random_range(0..8) {
                    0 => rng.random_range(0..0x20),
                    1 => rng.random_range(0x7f..0xa0),
                    2 => rng.random_range(0xa0..0x100),
                    3 => rng.random_range(0x2000..0x2070),
                    4 => *pick(
                        rng,
                        &[
                            0, 13, 38, 59, 60, 0xd800, 0xdfff, 0xfdd0, 0xfffe, 0x1ffff, 0x10ffff,
                            0x110000,
                        ],
                    ),
                    5 => rng.random_range(0x1f300..0x1f650),
                    // Planes 4 to 13 (unassigned) and 15 to 16 (private use): stable classes.
                    6 => {
                        if rng.random_bool(0.5) {
                            rng.random_range(0x40000..0xe0000)
                        } else {
                            rng.random_range(0xf0000..0x110000)
                        }
                    }
                    // Assigned characters only: the classes of newer ones (letters in Python's
                    // `regex`, maybe not yet in Rust's) depend on each side's Unicode version.
                    _ => {
                        let (a, b) = *pick(rng, SCRIPTS);
                        rng.random_range(a..=b)
                    }
                };
                let zeros = "0".repeat(rng.random_range(0..3));
                match rng.random_range(0..3) {
                    0 => format!("&#{zeros}{n}{semi}"),
                    1 => format!("&#x{zeros}{n:x}{semi}"),
                    _ => format!("&#X{zeros}{n:X}{semi}"),
                }
            }
            8 => format!("&#{}{semi}", "9".repeat(rng.random_range(8..30))),
            _ => format!("&{}{semi}", "a".repeat(rng.random_range(20..40))),
        };
        match rng.random_range(0..10) {
            // Escaped twice or three times.
            0 => body.replacen('&', "&amp;", 1),
            1 => body.replacen('&', "&amp;amp;", 1),
            2 => body.replacen('&', &random_case(rng, "&amp;"), 1),
            3 => format!("{body}{}", pick(rng, &["x", "X", "é", "1", ";", "&", ""])),
            _ => body,
        }
    }

    fn piece(rng: &mut ChaCha8Rng) -> String {
        match rng.random_range(0..100) {
            0..=29 => mojibake(rng),
            30..=39 => correct_text(rng),
            40..=46 => pick(rng, LOOKALIKES).to_string(),
            47..=60 => entity(rng),
            61..=66 => pick(rng, CONTROLS).to_string(),
            67..=69 => pick(rng, ESCAPES).to_string(),
            70..=74 => pick(rng, BREAKS).to_string(),
            75..=80 => pick(rng, ODD).to_string(),
            81..=86 => script_run(rng),
            87..=89 => {
                // Full-width and half-width forms.
                let n = rng.random_range(1..6);
                (0..n)
                    .map(|_| char::from_u32(rng.random_range(0xff01..0xffef)).unwrap())
                    .filter(|c| !('\u{ffbf}'..='\u{ffc1}').contains(c))
                    .collect()
            }
            _ => pick(rng, super::WORDS).to_string(),
        }
    }

    pub fn caption(rng: &mut ChaCha8Rng) -> String {
        let n = if rng.random_bool(0.05) {
            rng.random_range(30..120)
        } else {
            rng.random_range(1..10)
        };
        let mut s = String::new();
        for i in 0..n {
            if i > 0 {
                match rng.random_range(0..10) {
                    0 => {}
                    1 => {
                        let b = *pick(rng, BREAKS);
                        s.push_str(b);
                    }
                    _ => s.push(' '),
                }
            }
            s.push_str(&piece(rng));
        }
        s
    }
}

/// The captions of `same_ids_as_open_clip_on_10000_hard_captions` (seed 19). A caption whose
/// cleaned text has a code point that Rust's `regex` tables (Unicode 16) call unassigned, below
/// plane 4, is drawn again: mojibake repair can decode to such code points, and whether they
/// are letters for the pre-tokenizer depends on the Unicode version of each side (Python's
/// `regex` knows Unicode 17's U+208F, for one), not on the cleaning.
fn hard_captions() -> Vec<String> {
    let newer = regex::Regex::new(r"[\p{Cn}&&[\x{0}-\x{3ffff}]]").unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(19);
    let mut out = Vec::with_capacity(10_000);
    while out.len() < 10_000 {
        let c = hard::caption(&mut rng);
        if !newer.is_match(&openwit_clip::tokenizer::clean(&c)) {
            out.push(c);
        }
    }
    out
}

#[test]
fn same_ids_as_open_clip_on_10000_hard_captions() {
    let Some(py) = common::python_path() else {
        return;
    };
    let tok = Tokenizer::from_default().unwrap();
    let captions = hard_captions();
    let mojibake = captions
        .iter()
        .filter(|c| openwit_clip::ftfy::fix_encoding(c) != **c)
        .count();
    let dir = tempfile::tempdir().unwrap();
    let cap_path = dir.path().join("captions.json");
    std::fs::write(&cap_path, serde_json::to_string(&captions).unwrap()).unwrap();
    let ids_path = dir.path().join("ids.json");
    let clean_path = dir.path().join("clean.json");
    let (c, i, k) = (
        cap_path.to_str().unwrap(),
        ids_path.to_str().unwrap(),
        clean_path.to_str().unwrap(),
    );
    common::reference(&py, &["tokens", c, i]);
    common::reference(&py, &["clean", c, k]);
    let want: Vec<Vec<i64>> =
        serde_json::from_str(&std::fs::read_to_string(&ids_path).unwrap()).unwrap();
    let want_clean: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(&clean_path).unwrap()).unwrap();
    assert_eq!(want.len(), captions.len());
    let mut bad = Vec::new();
    let mut bad_clean = 0;
    for ((c, w), wc) in captions.iter().zip(&want).zip(&want_clean) {
        let got_clean = openwit_clip::tokenizer::clean(c);
        if &got_clean != wc {
            bad_clean += 1;
        }
        let got = tok.tokenize(c, 77);
        if &got != w {
            bad.push((c.clone(), got_clean, wc.clone()));
        }
    }
    for (c, g, w) in bad.iter().take(8) {
        eprintln!("caption {c:?}\n  ours   {g:?}\n  theirs {w:?}");
    }
    eprintln!(
        "{} of {} hard captions differ in ids, {bad_clean} in cleaned text; {mojibake} have mojibake that ftfy repairs",
        bad.len(),
        captions.len()
    );
    assert!(
        bad.is_empty() && bad_clean == 0,
        "{} of {} hard captions differ ({bad_clean} cleaned texts)",
        bad.len(),
        captions.len()
    );
    assert!(
        mojibake > 2_000,
        "the hard captions must exercise the mojibake repair ({mojibake})"
    );
}

#[test]
fn codecs_match_python() {
    let Some(py) = common::python_path() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("codecs.json");
    common::reference(&py, &["codecs", out.to_str().unwrap()]);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert!(
        v["ftfy"].as_str().unwrap().starts_with("6.3."),
        "the reference must be ftfy 6.3, found {}",
        v["ftfy"]
    );
    for cm in openwit_clip::ftfy::codecs::Charmap::ALL {
        let want: Vec<u32> = serde_json::from_value(v["tables"][cm.python_name()].clone()).unwrap();
        let got: Vec<u32> = cm.decode_table().iter().map(|c| *c as u32).collect();
        assert_eq!(got, want, "{}", cm.python_name());
    }
}
