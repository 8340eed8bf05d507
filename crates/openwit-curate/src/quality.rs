//! Caption cleaning and quality checks. Each rejected caption gets one drop reason.
//!
//! Cleaning (before every check, and the caption stored downstream): HTML entities decoded
//! twice (`&amp;amp;` is common in crawled alt text), control and zero-width characters removed,
//! every run of whitespace (including no-break spaces) collapsed to one space, ends trimmed.

use std::collections::HashSet;

use regex::{Regex, RegexSet};

use crate::config::QualityConfig;

/// Drop reasons of the quality checks, in the order they are checked.
pub const EMPTY: &str = "caption_empty";
pub const TOO_LONG: &str = "caption_too_long";
pub const URL_OR_PATH: &str = "caption_url_or_path";
pub const CAMERA_NAME: &str = "caption_camera_name";
pub const BOILERPLATE: &str = "caption_boilerplate";
pub const TOO_SHORT: &str = "caption_too_short";
pub const TOO_FEW_WORDS: &str = "caption_too_few_words";

/// The built-in boilerplate alt texts (compared after [`boilerplate_key`]).
pub const DEFAULT_BOILERPLATE: &[&str] = &[
    "image",
    "images",
    "img",
    "photo",
    "photos",
    "picture",
    "pic",
    "logo",
    "icon",
    "spacer",
    "thumbnail",
    "thumb",
    "click here",
    "click to enlarge",
    "click to view",
    "enlarge",
    "view larger",
    "view image",
    "image not found",
    "no image",
    "no image available",
    "image coming soon",
    "placeholder",
    "untitled",
    "untitled image",
    "banner",
    "avatar",
    "loading",
    "blank",
    "pixel",
    "transparent",
    "default image",
    "featured image",
    "header image",
    "product image",
    "profile picture",
    "alt text",
    "alt",
    "null",
    "undefined",
    "none",
    "n a",
    "site logo",
    "company logo",
    "facebook",
    "twitter",
    "instagram",
    "pinterest",
    "linkedin",
    "youtube",
    "rss",
    "share",
    "search",
    "menu",
    "close",
    "home",
    "back",
    "next",
    "previous",
    "prev",
    "arrow",
    "button",
    "download",
    "play",
    "play video",
    "read more",
    "more",
];

/// Decodes HTML entities twice and normalizes whitespace (see the module docs).
pub fn clean(raw: &str) -> String {
    let once = html_escape::decode_html_entities(raw);
    let twice = if once.contains('&') {
        html_escape::decode_html_entities(&once).into_owned()
    } else {
        once.into_owned()
    };
    let mut out = String::with_capacity(twice.len());
    let mut pending_space = false;
    for c in twice.chars() {
        if c.is_whitespace() {
            pending_space = true;
        } else if c.is_control() || matches!(c, '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{feff}') {
            continue;
        } else {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(c);
        }
    }
    out
}

/// The form boilerplate is compared in: lower-cased, digits and punctuation dropped, words
/// separated by one space (`"Image-3."` -> `"image"`, `"Click HERE!"` -> `"click here"`).
pub fn boilerplate_key(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if c.is_alphabetic() {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.extend(c.to_lowercase());
        } else if !c.is_numeric() {
            space = true;
        }
    }
    out
}

/// The compiled quality checks.
pub struct Quality {
    cfg: QualityConfig,
    boilerplate: HashSet<String>,
    url_or_path: RegexSet,
    camera: RegexSet,
    exif_tokens: Regex,
}

impl Quality {
    pub fn new(cfg: &QualityConfig) -> Self {
        let mut boilerplate: HashSet<String> = HashSet::new();
        if cfg.default_boilerplate {
            boilerplate.extend(DEFAULT_BOILERPLATE.iter().map(|s| boilerplate_key(s)));
        }
        boilerplate.extend(cfg.boilerplate.iter().map(|s| boilerplate_key(s)));
        boilerplate.remove("");
        let img_ext =
            r"(?:jpe?g|jpe|png|gif|webp|bmp|tiff?|heic|heif|avif|svg|raw|cr2|nef|arw|dng)";
        let url_or_path = RegexSet::new([
            // URLs, with or without a scheme.
            r"(?i)^(?:[a-z][a-z0-9+.\-]*://|www\.|mailto:|data:)\S*$",
            r"(?i)^(?:[a-z0-9\-]+\.)+(?:com|org|net|edu|gov|io|co|uk|de|fr|jp|ru|info|biz)(?:/\S*)?$",
            // Paths: no spaces and at least one slash or backslash with something around it.
            r"^[^\s]*[/\\][^\s]*[/\\]?[^\s]*$",
            r"(?i)^[a-z]:\\",
            // A bare file name with an extension of an image, document or page.
            &format!(
                r"(?i)^[^\s/\\]+(?:\s[^\s/\\]+){{0,3}}\.(?:{img_ext}|pdf|html?|php|aspx?|jsp|js|css|mp4|mov|avi)$"
            ),
        ])
        .expect("valid url/path regexes");
        let camera = RegexSet::new([
            // Camera and phone file names: IMG_1234, DSC00042, DSCN0001, P1010001, PXL_2021...
            r"(?i)^(?:img|dsc|dscn|dscf|dcim|pict|pxl|mvimg|vid|gopr|gp|dji|sam|wp|cimg|imag|dsci|sdc|hpim|kif|mvc|photo|image|pic|screenshot|screen shot|scan|snapshot|whatsapp image|fb_img|received)[_\- ]*\d{3,}[\w\-.]*(?:\s(?:at\s)?[\d\-_.:]+)*(?:\s?\(\d+\))?(?:\.\w{2,4})?$",
            r"(?i)^p\d{7}(?:\.\w+)?$",
            // Date/time stamps: 20160716_113957, 2016-07-16 11.39.57, 2016_07_16.
            r"^\d{8}[_\- T]?\d{4,6}\w*(?:\.\w{2,4})?$",
            r"^\d{4}[\-_.]\d{2}[\-_.]\d{2}(?:[ _T\-]\d{2}[.:\-_]?\d{2}(?:[.:\-_]?\d{2})?)?\w*(?:\.\w{2,4})?$",
            // Long hex or numeric ids (hashes, upload ids), possibly with an extension.
            r"(?i)^[0-9a-f\-_]{12,}(?:\.\w{2,4})?$",
            r"^[\d_\-.\s]+$",
            // A single token of letters, digits and separators with a long digit run (image_001234).
            r"(?i)^[a-z]*[_\-]?\d{4,}[a-z0-9_\-]*(?:\.\w{2,4})?$",
        ])
        .expect("valid camera regexes");
        let exif_tokens = Regex::new(
            r"(?i)\b(?:f/\d+(?:\.\d+)?|1/\d+\s?s?\b|iso\s?\d{2,5}\b|\d+(?:\.\d+)?\s?mm\b|\d+(?:\.\d+)?\s?sec\b|ev\s?[+\-]?\d|exposure|aperture|focal length|canon|nikon|sony|fujifilm|olympus|panasonic|pentax|leica|eos|nikkor|lumix|dslr)",
        )
        .expect("valid exif regex");
        Quality {
            cfg: cfg.clone(),
            boilerplate,
            url_or_path,
            camera,
            exif_tokens,
        }
    }

    /// Checks a cleaned caption: `None` to keep it, or the drop reason.
    pub fn check(&self, caption: &str) -> Option<&'static str> {
        if caption.is_empty() {
            return Some(EMPTY);
        }
        let chars = caption.chars().count();
        if chars > self.cfg.max_chars {
            return Some(TOO_LONG);
        }
        if self.cfg.drop_camera_names && self.is_camera(caption) {
            return Some(CAMERA_NAME);
        }
        if self.cfg.drop_url_or_path && self.url_or_path.is_match(caption) {
            return Some(URL_OR_PATH);
        }
        if !self.boilerplate.is_empty() && self.boilerplate.contains(&boilerplate_key(caption)) {
            return Some(BOILERPLATE);
        }
        if chars < self.cfg.min_chars {
            return Some(TOO_SHORT);
        }
        if caption.split(' ').filter(|w| !w.is_empty()).count() < self.cfg.min_words {
            return Some(TOO_FEW_WORDS);
        }
        None
    }

    fn is_camera(&self, caption: &str) -> bool {
        if self.camera.is_match(caption) {
            return true;
        }
        // Camera data ("Canon EOS 5D f/2.8 1/200s ISO100"): most words are EXIF-like tokens.
        let tokens = self.exif_tokens.find_iter(caption).count();
        if tokens >= 2 {
            let words = caption.split(' ').count();
            let other = words.saturating_sub(tokens);
            return tokens >= 3 || other <= tokens + 1;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> Quality {
        Quality::new(&QualityConfig::default())
    }

    fn verdict(s: &str) -> Option<&'static str> {
        q().check(&clean(s))
    }

    #[test]
    fn cleaning() {
        assert_eq!(
            clean("  Tom &amp;amp; Jerry&nbsp;\n\tin&#32;Paris "),
            "Tom & Jerry in Paris"
        );
        assert_eq!(clean("caf&eacute; &lt;b&gt;"), "café <b>");
        assert_eq!(clean("a\u{200b}b\u{0007}c"), "abc");
        assert_eq!(clean("\u{a0}\u{3000}"), "");
    }

    #[test]
    fn keeps_ordinary_captions() {
        for s in [
            "A brown dog running on the beach",
            "Tom &amp; Jerry in Paris",
            "Eiffel Tower at night",
            "The 2016 Olympic Games opening ceremony",
            "Shot with a 50mm lens at golden hour",
            "Canon EOS 5D Mark IV camera body on a wooden table",
            "Map of 1/2 of the island",
            "東京タワー 夜景",
            "My photo of the lake",
            "Photo 2019 trip to Rome with friends",
            "Logo of the United Nations",
        ] {
            assert_eq!(verdict(s), None, "{s}");
        }
    }

    #[test]
    fn drops_by_reason() {
        let cases = [
            ("", EMPTY),
            ("  \n\t ", EMPTY),
            ("&nbsp;", EMPTY),
            ("dog", TOO_SHORT),
            ("a b", TOO_SHORT),
            ("Landscape", TOO_FEW_WORDS),
            ("https://example.com/img/dog.jpg", URL_OR_PATH),
            ("www.example.org/page", URL_OR_PATH),
            ("example.com", URL_OR_PATH),
            ("/var/www/images/dog.png", URL_OR_PATH),
            ("images/2019/dog-photo", URL_OR_PATH),
            ("C:\\Users\\me\\Pictures\\dog.jpg", URL_OR_PATH),
            ("my dog.jpg", URL_OR_PATH),
            ("brochure.pdf", URL_OR_PATH),
            ("IMG_1234", CAMERA_NAME),
            ("IMG_1234.JPG", CAMERA_NAME),
            ("20160716_113957.JPG", CAMERA_NAME),
            ("WhatsApp Image 2021-03-04 at 10.11.12", CAMERA_NAME),
            ("DSC00042", CAMERA_NAME),
            ("DSCN0001", CAMERA_NAME),
            ("P1010001", CAMERA_NAME),
            ("PXL_20210612_101010123", CAMERA_NAME),
            ("20160716_113957", CAMERA_NAME),
            ("2016-07-16 11.39.57", CAMERA_NAME),
            ("Screenshot 2020-01-01", CAMERA_NAME),
            ("Canon EOS 5D f/2.8 1/200s ISO100", CAMERA_NAME),
            ("f/8 1/250 ISO 200", CAMERA_NAME),
            ("NIKON D750 50mm", CAMERA_NAME),
            ("3f9a2c1be0d44c7f", CAMERA_NAME),
            ("12345 67890", CAMERA_NAME),
            ("image", BOILERPLATE),
            ("Image 3", BOILERPLATE),
            ("photo", BOILERPLATE),
            ("LOGO", BOILERPLATE),
            ("icon", BOILERPLATE),
            ("spacer", BOILERPLATE),
            ("thumbnail", BOILERPLATE),
            ("Click here!", BOILERPLATE),
            ("click to enlarge", BOILERPLATE),
            (&"word ".repeat(300), TOO_LONG),
        ];
        let q = q();
        for (s, want) in cases {
            assert_eq!(q.check(&clean(s)), Some(want), "{s:?}");
        }
    }

    #[test]
    fn configurable() {
        let cfg = QualityConfig {
            min_chars: 1,
            min_words: 1,
            max_chars: 10,
            default_boilerplate: false,
            boilerplate: vec!["Sponsored".into()],
            drop_url_or_path: false,
            drop_camera_names: false,
        };
        let q = Quality::new(&cfg);
        assert_eq!(q.check("dog"), None);
        assert_eq!(q.check("image"), None);
        assert_eq!(q.check("sponsored!"), Some(BOILERPLATE));
        assert_eq!(q.check("DSC00042"), None);
        assert_eq!(q.check("example.com"), Some(TOO_LONG));
        assert_eq!(q.check("a.com/x"), None);
    }
}
