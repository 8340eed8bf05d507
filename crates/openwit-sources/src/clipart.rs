//! The demo's world of real pictures: drawings of the Open Clip Art Library as Debian ships them
//! (`openclipart-svg` and `openclipart-png`, 8,121 drawings in topic folders, public domain).
//!
//! Each SVG carries what its author wrote about it in its RDF metadata: a title, often a
//! description, keywords, the author's name. Those texts were written by people, not by this
//! project, with everything real texts have: titles in Italian, file names, `HASH(0x8a40c04)`
//! keywords, "Created with Inkscape" descriptions. The PNG package holds the same drawings
//! rendered, under the same relative paths.
//!
//! [`select`] picks the pictures of a fixed list of topics ([`CLASSES`], each one or more
//! folders), a capped number per topic, and splits them by image into a training part and a
//! held-out part (a hash of the relative path: deterministic, independent of the order of the
//! walk). [`crate::demo_site::generate_clipart`] serves the training part as web pages and
//! writes the held-out part as a labelled image folder that the crawl never sees.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{IoAt, SourcesError};

/// The demo's topics: the class name (what zero-shot prompts say) and the folders under `svg/`
/// (and `png/`) whose drawings are that class, subfolders included.
pub const CLASSES: &[(&str, &[&str])] = &[
    ("bird", &["animals/birds"]),
    ("insect", &["animals/bugs"]),
    ("mammal", &["animals/mammals"]),
    ("fruit", &["food/fruit"]),
    ("dessert", &["food/desserts"]),
    ("beverage", &["food/beverages"]),
    ("flower", &["plants/flowers"]),
    ("house", &["buildings/homes"]),
    ("boat", &["transportation/boating"]),
    ("vehicle", &["transportation/vehicles"]),
    ("road sign", &["transportation/roadsigns"]),
    ("flag", &["signs_and_symbols/flags"]),
    ("music", &["recreation/music"]),
    ("sports", &["recreation/sports"]),
    ("toy", &["recreation/toys"]),
    ("playing card", &["recreation/games/cards"]),
    ("clock", &["signs_and_symbols/clocks"]),
    ("clothing", &["people/clothing"]),
    ("smiley", &["people/smilies"]),
    ("stars", &["shapes/stars"]),
];

/// What an SVG's RDF metadata (`<metadata><rdf:RDF><cc:Work>`) says about the drawing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SvgMeta {
    /// `dc:title` of the work (not of its creator or publisher agents).
    pub title: Option<String>,
    /// `dc:description` of the work.
    pub description: Option<String>,
    /// The `rdf:li` entries of `dc:subject`, in order, empty ones left out.
    pub keywords: Vec<String>,
    /// The `dc:title` of the `dc:creator` agent.
    pub creator: Option<String>,
}

/// Reads the RDF metadata of an SVG file. Texts are unescaped, their whitespace collapsed, and
/// empty ones are `None`. Malformed XML gives what was read before the error; a file without
/// metadata gives an empty [`SvgMeta`]. Never panics, whatever the bytes.
pub fn parse_svg_meta(svg: &[u8]) -> SvgMeta {
    use quick_xml::events::Event as X;
    let mut r = quick_xml::Reader::from_reader(svg);
    // Entities declared in an internal DTD (Illustrator's `&ns_svg;`) are not resolved: they
    // only occur in attributes of those files, and an unknown one in a text is left out.
    r.config_mut().check_end_names = false;
    let mut buf = Vec::new();
    // The local names (prefix cut) of the open elements.
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut meta = SvgMeta::default();
    // The field the current text goes to, and the text read so far.
    let mut field: Option<Field> = None;
    let mut text = String::new();
    loop {
        match r.read_event_into(&mut buf) {
            Ok(X::Start(s)) => {
                let name = s.local_name().as_ref().to_vec();
                if field.is_none() {
                    field = field_of(&stack, &name);
                    text.clear();
                }
                stack.push(name);
            }
            Ok(X::End(_)) => {
                let closing = stack.pop();
                if let Some(f) = field
                    && closing.is_some()
                    && field_of(&stack, closing.as_deref().unwrap_or_default()) == Some(f)
                {
                    let t = collapse(&text);
                    if !t.is_empty() {
                        match f {
                            Field::Title => {
                                meta.title.get_or_insert(t);
                            }
                            Field::Description => {
                                meta.description.get_or_insert(t);
                            }
                            Field::Keyword => meta.keywords.push(t),
                            Field::Creator => {
                                meta.creator.get_or_insert(t);
                            }
                        }
                    }
                    field = None;
                }
                // The metadata block is over: nothing more to read.
                if closing.as_deref() == Some(b"metadata".as_slice()) && meta.title.is_some() {
                    break;
                }
            }
            Ok(X::Text(t)) if field.is_some() => match t.decode() {
                Ok(s) => text.push_str(&s),
                Err(_) => text.push_str(&String::from_utf8_lossy(&t)),
            },
            Ok(X::GeneralRef(g)) if field.is_some() => {
                text.extend(crate::html::xml_ref_char(&g));
            }
            Ok(X::CData(t)) if field.is_some() => text.push_str(&String::from_utf8_lossy(&t)),
            Ok(X::Eof) | Err(_) => break,
            _ => {}
        }
        buf.clear();
    }
    meta
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Title,
    Description,
    Keyword,
    Creator,
}

/// Which field an element named `name` opened inside `stack` holds.
fn field_of(stack: &[Vec<u8>], name: &[u8]) -> Option<Field> {
    let parent = stack.last().map(Vec::as_slice);
    let in_work = stack.iter().any(|n| n == b"Work");
    if !in_work {
        return None;
    }
    let under = |n: &[u8]| stack.iter().any(|s| s == n);
    match name {
        b"title" if parent == Some(b"Work") => Some(Field::Title),
        b"description" if parent == Some(b"Work") => Some(Field::Description),
        b"li" if under(b"subject") => Some(Field::Keyword),
        b"title" if parent == Some(b"Agent") && under(b"creator") => Some(Field::Creator),
        _ => None,
    }
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One drawing of the demo world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drawing {
    /// Its class (an entry of [`CLASSES`]).
    pub class: &'static str,
    /// Its path under `svg/` without the extension, as the package names it (the folder of the
    /// class, `/`-separated): `animals/birds/seagull_contour_nicu_buc_01`.
    pub name: String,
    /// The rendered picture (`png/NAME.png`, links resolved).
    pub png: PathBuf,
    pub meta: SvgMeta,
    /// In the held-out part: never served, never trained on.
    pub held_out: bool,
}

impl Drawing {
    /// Its class as a folder name (`playing_card`; an image folder reads `_` as a space).
    pub fn class_dir(&self) -> String {
        self.class.replace(' ', "_")
    }

    /// Where it lies in an image folder of its part: `CLASS_DIR/PATH.png`, the package path
    /// with `/` as `-`, so that drawings of two sub-folders never share a name.
    pub fn rel_png(&self) -> String {
        format!("{}/{}.png", self.class_dir(), self.name.replace('/', "-"))
    }
}

/// What [`select`] found and left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// The chosen drawings, by class then name.
    pub drawings: Vec<Drawing>,
    /// Drawings the package files under two or more of the classes (the same file linked into
    /// several folders): their class is ambiguous, so they are left out.
    pub ambiguous: u64,
    /// Drawings without a rendered PNG, or whose SVG could not be read.
    pub unusable: u64,
    /// Drawings over the per-class cap.
    pub over_cap: u64,
}

/// The Open Clip Art folder: `dir` itself when it holds `svg/` and `png/` (Debian's
/// `/usr/share/openclipart`), or the same layout under `dir/usr/share/openclipart` (the packages
/// extracted with `dpkg-deb -x` into `dir`, as `scripts/setup.sh` does).
pub fn root_of(dir: &Path) -> Result<PathBuf, SourcesError> {
    for cand in [dir.to_path_buf(), dir.join("usr/share/openclipart")] {
        if cand.join("svg").is_dir() && cand.join("png").is_dir() {
            return Ok(cand);
        }
    }
    Err(SourcesError::Input(format!(
        "{}: no Open Clip Art drawings here (expected svg/ and png/ folders, as Debian's openclipart-svg and openclipart-png packages install them under /usr/share/openclipart); run `scripts/setup.sh`, which extracts them into ~/.cache/openwit/openclipart, or set [demo_site] openclipart to their folder",
        dir.display()
    )))
}

/// The demo world's drawings under `root` (see [`root_of`]): for each class of [`CLASSES`], its
/// drawings (links resolved; a file reached from two classes is left out), at most `per_class`
/// of them (those whose name hashes lowest, so the choice does not depend on the others), and
/// `held_out_percent` of them, chosen by a hash of the name, marked held out.
pub fn select(
    root: &Path,
    per_class: usize,
    held_out_percent: u32,
) -> Result<Selection, SourcesError> {
    let svg_root = root.join("svg");
    // canonical SVG path -> (class, name under svg/ without extension)
    let mut found: BTreeMap<PathBuf, Vec<(&'static str, String)>> = BTreeMap::new();
    let mut broken = 0;
    for (class, folders) in CLASSES {
        for folder in *folders {
            let mut files = Vec::new();
            walk(&svg_root.join(folder), &mut files)?;
            for f in files {
                let Ok(canon) = f.canonicalize() else {
                    broken += 1;
                    continue;
                };
                let rel = f
                    .strip_prefix(&svg_root)
                    .unwrap_or(&f)
                    .with_extension("")
                    .to_string_lossy()
                    .replace('\\', "/");
                let e = found.entry(canon).or_default();
                if !e.iter().any(|(c, _)| c == class) {
                    e.push((class, rel));
                }
            }
        }
    }
    let mut sel = Selection {
        unusable: broken,
        ..Selection::default()
    };
    let mut by_class: BTreeMap<&'static str, Vec<(u64, String, PathBuf)>> = BTreeMap::new();
    for (canon, classes) in found {
        if classes.len() > 1 {
            sel.ambiguous += 1;
            continue;
        }
        let (class, name) = classes.into_iter().next().unwrap_or_default();
        by_class
            .entry(class)
            .or_default()
            .push((name_hash(&name, 0), name, canon));
    }
    for (class, mut items) in by_class {
        items.sort();
        for (i, (_, name, svg)) in items.into_iter().enumerate() {
            if i >= per_class {
                sel.over_cap += 1;
                continue;
            }
            let png = root.join("png").join(format!("{name}.png"));
            let (Ok(png), Ok(bytes)) = (png.canonicalize(), std::fs::read(&svg)) else {
                sel.unusable += 1;
                continue;
            };
            let held_out = name_hash(&name, 1) % 100 < u64::from(held_out_percent);
            sel.drawings.push(Drawing {
                class,
                meta: parse_svg_meta(&bytes),
                name,
                png,
                held_out,
            });
        }
    }
    sel.drawings
        .sort_by(|a, b| (a.class, &a.name).cmp(&(b.class, &b.name)));
    Ok(sel)
}

/// The `.svg` files under `dir`, recursively, links followed (a missing folder has none).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), SourcesError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).at(dir.display()),
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "svg") {
            out.push(p);
        }
    }
    Ok(())
}

/// A stable 64-bit hash of a drawing's name for a purpose (`salt`): the cap's order and the
/// held-out split must not change with the Rust version or the platform.
fn name_hash(name: &str, salt: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(name.as_bytes(), salt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_work_not_its_agents() {
        let svg = br#"<?xml version="1.0"?>
<svg xmlns="http://www.w3.org/2000/svg"><metadata>
<rdf:RDF xmlns:rdf="r" xmlns:cc="c" xmlns:dc="d"><cc:Work rdf:about="">
<dc:title>Tom &amp;
  Jerry &#233;t&#xE9;</dc:title>
<dc:description><![CDATA[a <cat>]]></dc:description>
<dc:subject><rdf:Bag><rdf:li>cat</rdf:li><rdf:li></rdf:li><rdf:li> mouse </rdf:li></rdf:Bag></dc:subject>
<dc:publisher><cc:Agent><dc:title>Open Clip Art Project</dc:title></cc:Agent></dc:publisher>
<dc:creator><cc:Agent><dc:title>Someone</dc:title></cc:Agent></dc:creator>
</cc:Work></rdf:RDF></metadata><path d="M0 0"/></svg>"#;
        let m = parse_svg_meta(svg);
        assert_eq!(m.title.as_deref(), Some("Tom & Jerry été"));
        assert_eq!(m.description.as_deref(), Some("a <cat>"));
        assert_eq!(m.keywords, ["cat", "mouse"]);
        assert_eq!(m.creator.as_deref(), Some("Someone"));
    }

    #[test]
    fn broken_or_bare_svgs_give_what_was_read() {
        assert_eq!(parse_svg_meta(b""), SvgMeta::default());
        assert_eq!(parse_svg_meta(b"<svg><path/></svg>"), SvgMeta::default());
        let cut = b"<svg><metadata><cc:Work><dc:title>Cut</dc:title><dc:subject><rdf:li>a";
        let m = parse_svg_meta(cut);
        assert_eq!(m.title.as_deref(), Some("Cut"));
        assert!(m.keywords.is_empty());
        for n in 0..cut.len() {
            let _ = parse_svg_meta(&cut[..n]);
        }
    }
}
