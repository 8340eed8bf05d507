//! The HTML extractor shared by the crawler and the WARC reader (built on `scraper`).
//!
//! For every `<img>`: the image URL (the largest `srcset` candidate, else a lazy-load attribute
//! such as `data-src`, else `src`), resolved against `<base href>` and the page URL; its `alt`,
//! `title`, the `<figcaption>` of an enclosing `<figure>`, and declared `width`/`height`.
//! `data:` URIs, 1x1 tracking pixels and non-http(s) URLs are skipped and counted. The page's
//! `<html lang>` and `<title>` are kept. A page that opts out (a `<meta name="robots">` or an
//! `X-Robots-Tag` header with `noai`, `noimageai`, `noindex`, `noimageindex`, `none` or a past
//! `unavailable_after: <date>`, read by `openwit_http::optout`: rules after a user-agent prefix
//! count only for `openwit:` or `*:`, not for `otherbot:`) contributes nothing.
//!
//! ```
//! use openwit_sources::extract::extract;
//! let page = url::Url::parse("https://example.com/pets/").unwrap();
//! let html = r#"<html lang="en"><body><img src="cat.jpg" alt="A grey cat"></body></html>"#;
//! let ex = extract(html, &page, &[]);
//! assert_eq!(ex.images[0].url, "https://example.com/pets/cat.jpg");
//! assert_eq!(ex.images[0].alt.as_deref(), Some("A grey cat"));
//! assert_eq!(ex.lang.as_deref(), Some("en"));
//! ```

use std::collections::HashSet;
use std::hash::BuildHasher;

use openwit_core::Drops;
use scraper::node::Element;
use scraper::{ElementRef, Html};
use url::Url;

use crate::candidate::{Candidate, CaptionSource};
use crate::dropped::{DroppedImage, clip, clip_caption, clip_url};

/// Directives that make a page contribute nothing.
pub use openwit_http::optout::OPT_OUT_DIRECTIVES;

/// Captions longer than this (in bytes) are dropped as junk.
pub const MAX_CAPTION_BYTES: usize = 4096;
/// URLs longer than this are dropped.
pub const MAX_URL_BYTES: usize = 4096;

/// Lazy-load attributes, in order of preference, holding a single URL.
const LAZY_ATTRS: [&str; 6] = [
    "data-src",
    "data-lazy-src",
    "data-original",
    "data-lazy",
    "data-url",
    "data-full-src",
];
/// Lazy-load attributes holding a srcset.
const LAZY_SRCSET_ATTRS: [&str; 2] = ["data-srcset", "data-lazy-srcset"];

/// One image found on a page, before captions are split into rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundImage {
    pub url: String,
    pub alt: Option<String>,
    pub title: Option<String>,
    pub figcaption: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
}

/// What one page gave.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extraction {
    pub lang: Option<String>,
    pub title: Option<String>,
    pub images: Vec<FoundImage>,
    /// The directive that opted the page out (then `images` is empty).
    pub opted_out: Option<String>,
    /// Skipped images by reason (`data_uri`, `tracking_pixel`, `non_http_url`, `invalid_url`, ...).
    pub drops: Drops,
    /// The skipped images one by one (URL, caption, reason), in page order: one per drop
    /// counted in `drops`, for the stage's listing of dropped records.
    pub dropped: Vec<DroppedImage>,
}

impl Extraction {
    /// Counts a skipped image under its reason and lists it.
    pub(crate) fn drop_image(&mut self, img: DroppedImage) {
        self.drops.inc(img.reason);
        self.dropped.push(img);
    }
}

/// The caption an image would have had (its cleaned `alt`, else its `title`), for the listing of
/// an image dropped before its captions are read.
pub(crate) fn listed_caption(alt: Option<&str>, title: Option<&str>) -> Option<String> {
    alt.and_then(clean_text)
        .or_else(|| title.and_then(clean_text))
        .map(|c| clip_caption(&c))
}

/// The listing entry of a tracking pixel: its URL resolved when it can be, else as written.
pub(crate) fn tracking_pixel(base: &Url, raw: &str, caption: Option<String>) -> DroppedImage {
    match try_resolve_image_url(base, raw) {
        Ok(url) => DroppedImage {
            reason: "tracking_pixel",
            url: Some(url),
            caption,
            detail: None,
        },
        Err(_) => unresolved_image("tracking_pixel", Some(raw), caption),
    }
}

/// The listing entry of an image whose URL text `raw` was dropped for `reason` before it
/// resolved (a `data:` URI or an over-long URL is cut; `detail` gives its length).
pub(crate) fn unresolved_image(
    reason: &'static str,
    raw: Option<&str>,
    caption: Option<String>,
) -> DroppedImage {
    let raw = raw.map(str::trim).filter(|r| !r.is_empty());
    let (url, detail) = match raw {
        None => (None, None),
        Some(r) if is_data_uri(r) => (
            Some(clip(r, 64).to_string()),
            Some(format!("a data: URI of {} bytes; cut here", r.len())),
        ),
        Some(r) => {
            let (u, d) = clip_url(r);
            (Some(u), d)
        }
    };
    DroppedImage {
        reason,
        url,
        caption,
        detail,
    }
}

/// Collapses whitespace runs into one space and trims; `None` when empty.
pub fn clean_text(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    for w in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    (!out.is_empty()).then_some(out)
}

/// Whether an `X-Robots-Tag` or robots `<meta>` value opts out; returns the directive.
/// Read by [`openwit_http::optout`] as Google documents it: comma-separated rules, rules after
/// `agent:` only for `openwit` or `*`, `unavailable_after: <date>` past the clock's now
/// ([`openwit_core::clock::output_time_s`]).
pub fn opt_out_directive(value: &str) -> Option<String> {
    openwit_http::optout::Directives::from_header(value, openwit_http::optout::DEFAULT_TOKEN)
        .opt_out(&OPT_OUT_DIRECTIVES, openwit_core::clock::output_time_s())
}

/// Whether the page has an `<img` tag at all (a fast pre-check that spares the HTML parse).
pub fn has_img_tag(html: &[u8]) -> bool {
    memchr::memchr_iter(b'<', html).any(|i| {
        html.get(i + 1..i + 4)
            .is_some_and(|t| t.eq_ignore_ascii_case(b"img"))
    })
}

pub(crate) fn parse_dim(v: Option<&str>) -> Option<i32> {
    let v = v?.trim();
    let v = v.strip_suffix("px").unwrap_or(v).trim();
    let digits: &str = v.split('.').next()?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 7 {
        return None;
    }
    digits.parse().ok()
}

/// The largest candidate of a `srcset` (by `w` descriptor, else by `x` density; a candidate
/// without descriptor counts as `1x`). Returns the URL text.
pub fn largest_srcset(srcset: &str) -> Option<&str> {
    let mut best: Option<(f64, &str)> = None;
    // Candidates are separated by commas; a URL may itself contain commas only if it is
    // followed by a descriptor, so split on ", " boundaries conservatively.
    let mut rest = srcset.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        if rest.is_empty() {
            break;
        }
        let url_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let mut url = &rest[..url_end];
        let mut after = &rest[url_end..];
        let descriptor;
        if url.ends_with(',') {
            url = url.trim_end_matches(',');
            descriptor = "";
        } else {
            let d_end = after.find(',').unwrap_or(after.len());
            descriptor = after[..d_end].trim();
            after = &after[d_end..];
        }
        rest = after;
        if url.is_empty() {
            continue;
        }
        let score = descriptor
            .split_whitespace()
            .find_map(|d| {
                if let Some(w) = d.strip_suffix('w') {
                    w.parse::<f64>().ok().map(|w| w * 1e6)
                } else if let Some(x) = d.strip_suffix('x') {
                    x.parse::<f64>().ok()
                } else {
                    None
                }
            })
            .unwrap_or(1.0);
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, url));
        }
    }
    best.map(|(_, u)| u)
}

pub(crate) fn is_data_uri(s: &str) -> bool {
    s.trim_start()
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("data:"))
}

/// The attributes of an `<img>` the extractor reads, gathered in one pass over the element's
/// attributes: each is what `Element::attr` returns (the attribute without prefix or
/// namespace of that name; the parser keeps one per name) without building and interning a
/// name per lookup (the `data-*` names are not static atoms: a lock and a hash each time).
#[derive(Default)]
pub(crate) struct ImgAttrs<'a> {
    pub(crate) src: Option<&'a str>,
    pub(crate) srcset: Option<&'a str>,
    pub(crate) lazy: [Option<&'a str>; LAZY_ATTRS.len()],
    pub(crate) lazy_srcset: [Option<&'a str>; LAZY_SRCSET_ATTRS.len()],
    pub(crate) alt: Option<&'a str>,
    pub(crate) title: Option<&'a str>,
    pub(crate) width: Option<&'a str>,
    pub(crate) height: Option<&'a str>,
}

impl<'a> ImgAttrs<'a> {
    pub(crate) fn of(img: &'a Element) -> Self {
        let mut a = ImgAttrs::default();
        for (name, value) in img.attrs.iter() {
            if name.prefix.is_some() || !name.ns.is_empty() {
                continue;
            }
            let slot = match &*name.local {
                "src" => &mut a.src,
                "srcset" => &mut a.srcset,
                "alt" => &mut a.alt,
                "title" => &mut a.title,
                "width" => &mut a.width,
                "height" => &mut a.height,
                other => {
                    if let Some(k) = LAZY_ATTRS.iter().position(|l| *l == other) {
                        &mut a.lazy[k]
                    } else if let Some(k) = LAZY_SRCSET_ATTRS.iter().position(|l| *l == other) {
                        &mut a.lazy_srcset[k]
                    } else {
                        continue;
                    }
                }
            };
            if slot.is_none() {
                *slot = Some(&**value);
            }
        }
        a
    }
}

/// The raw URL text of an image: largest srcset, else a lazy-load attribute, else `src`.
pub(crate) fn image_url_text<'a>(img: &ImgAttrs<'a>) -> Option<&'a str> {
    let usable = |s: &&str| !s.trim().is_empty() && !is_data_uri(s);
    if let Some(u) = img.srcset.and_then(largest_srcset).filter(usable) {
        return Some(u);
    }
    for a in img.lazy_srcset {
        if let Some(u) = a.and_then(largest_srcset).filter(usable) {
            return Some(u);
        }
    }
    for a in img.lazy {
        if let Some(u) = a.filter(usable) {
            return Some(u);
        }
    }
    img.src.filter(|s| !s.trim().is_empty())
}

/// The whitespace-collapsed text of an element's subtree (as `clean_text` of all its text nodes
/// joined); most titles and captions are one text node, read without copying it first.
fn element_text(el: ElementRef<'_>) -> Option<String> {
    let mut parts = el.text();
    let first = parts.next()?;
    match parts.next() {
        None => clean_text(first),
        Some(second) => {
            let mut all = String::with_capacity(first.len() + second.len());
            all.push_str(first);
            all.push_str(second);
            all.extend(parts);
            clean_text(&all)
        }
    }
}

/// The caption of the nearest enclosing `<figure>`: its first `<figcaption>` descendant in
/// document order (what the `figcaption` selector found first in the figure's subtree).
fn figcaption_of(img: ElementRef<'_>) -> Option<String> {
    let figure = img
        .ancestors()
        .filter_map(ElementRef::wrap)
        .find(|el| el.value().name() == "figure")?;
    figure
        .descendants()
        .skip(1)
        .filter_map(ElementRef::wrap)
        .find(|el| el.value().name() == "figcaption")
        .and_then(element_text)
}

/// The value of the attribute `name` in no namespace, as `Element::attr` returns it, without
/// building and interning a `QualName` for the lookup.
fn attr<'a>(el: &'a Element, name: &str) -> Option<&'a str> {
    el.attrs
        .iter()
        .find(|(k, _)| k.prefix.is_none() && k.ns.is_empty() && &*k.local == name)
        .map(|(_, v)| &**v)
}

/// Whether the element has an attribute `name` in no namespace (the CSS test `[name]`).
fn has_attr(el: &Element, name: &str) -> bool {
    el.attrs
        .iter()
        .any(|(k, _)| k.ns.is_empty() && &*k.local == name)
}

/// The elements of a page the extractor reads, gathered in one pass over the parsed document
/// instead of one selector pass each. The pass visits the nodes `Html::select` visits, in the
/// same order (the tree's node arena, elements that have a parent, which includes children of
/// nodes the parser detached), so every "first" and "all" below is what the selectors
/// `meta[name][content]`, `base[href]`, `html`, `title`, `img` and `a[href], area[href],
/// frame[src], iframe[src]` found (checked against `extract_reference`).
#[derive(Default)]
struct PageScan<'a> {
    /// `(name, content)` of every `meta` with both attributes.
    metas: Vec<(&'a str, &'a str)>,
    /// The first `base` with an `href`: its `href` (`None` inside when only namespaced).
    base_href: Option<Option<&'a str>>,
    /// The first `html` element's `lang`.
    html_lang: Option<Option<&'a str>>,
    title: Option<ElementRef<'a>>,
    /// Every `img`, and every `noscript` (whose markup is raw text to a parser with scripting
    /// on, as a browser is: its images are parsed from that text), in visiting order.
    imgs: Vec<ElementRef<'a>>,
    links: Vec<&'a Element>,
}

impl<'a> PageScan<'a> {
    fn of(doc: &'a Html) -> Self {
        let mut s = PageScan::default();
        for node in doc.tree.nodes() {
            let Some(el) = node.value().as_element() else {
                continue;
            };
            if node.parent().is_none() {
                continue;
            }
            match el.name() {
                "img" | "noscript" => s.imgs.extend(ElementRef::wrap(node)),
                "a" | "area" if has_attr(el, "href") => s.links.push(el),
                "frame" | "iframe" if has_attr(el, "src") => s.links.push(el),
                "meta" if has_attr(el, "name") && has_attr(el, "content") => s.metas.push((
                    attr(el, "name").unwrap_or(""),
                    attr(el, "content").unwrap_or(""),
                )),
                "base" if s.base_href.is_none() && has_attr(el, "href") => {
                    s.base_href = Some(attr(el, "href"));
                }
                "html" if s.html_lang.is_none() => s.html_lang = Some(attr(el, "lang")),
                "title" if s.title.is_none() => s.title = ElementRef::wrap(node),
                _ => {}
            }
        }
        s
    }
}

/// The markup inside a `<noscript>` parsed as a body fragment, when it has an `<img` at all.
pub(crate) fn noscript_fragment(noscript: ElementRef<'_>) -> Option<Html> {
    let text: String = noscript.text().collect();
    has_img_tag(text.as_bytes()).then(|| Html::parse_fragment(&text))
}

/// Resolves an image URL against `base`; `None` (counted in `drops`) for `data:` URIs, invalid,
/// over-long and non-http(s) URLs. The fragment is removed.
pub fn resolve_image_url(base: &Url, raw: &str, drops: &mut Drops) -> Option<String> {
    match try_resolve_image_url(base, raw) {
        Ok(u) => Some(u),
        Err(reason) => {
            drops.inc(reason);
            None
        }
    }
}

/// [`resolve_image_url`] giving the drop reason (`no_image_url`, `data_uri`, `url_too_long`,
/// `invalid_url`, `non_http_url`) instead of counting it.
pub fn try_resolve_image_url(base: &Url, raw: &str) -> Result<String, &'static str> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("no_image_url");
    }
    if is_data_uri(raw) {
        return Err("data_uri");
    }
    if raw.len() > MAX_URL_BYTES {
        return Err("url_too_long");
    }
    let Ok(mut url) = base.join(raw) else {
        return Err("invalid_url");
    };
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err("non_http_url");
    }
    url.set_fragment(None);
    Ok(url.into())
}

/// [`try_resolve_image_url`] that counts and lists a drop in `ex`.
pub(crate) fn resolve_listed(
    base: &Url,
    raw: &str,
    caption: impl FnOnce() -> Option<String>,
    ex: &mut Extraction,
) -> Option<String> {
    match try_resolve_image_url(base, raw) {
        Ok(u) => Some(u),
        Err(reason) => {
            ex.drop_image(unresolved_image(reason, Some(raw), caption()));
            None
        }
    }
}

/// Extracts images and page metadata from `html` fetched from `page_url`; `x_robots_tags` are
/// the values of the response's `X-Robots-Tag` headers.
pub fn extract(html: &str, page_url: &Url, x_robots_tags: &[&str]) -> Extraction {
    extract_inner(html, page_url, x_robots_tags, false).0
}

/// [`extract`] plus the page's outgoing links (`<a href>`, `<area href>`, `<frame src>`,
/// `<iframe src>`; not those with `rel="nofollow"`, none when the page says `nofollow`), resolved
/// against `<base href>` and the page URL (not yet normalized). Opted-out pages give no images
/// but still give links unless they also say `nofollow`.
pub fn extract_with_links(
    html: &str,
    page_url: &Url,
    x_robots_tags: &[&str],
) -> (Extraction, Vec<Url>) {
    extract_inner(html, page_url, x_robots_tags, true)
}

pub(crate) fn says_nofollow(v: &str) -> bool {
    openwit_http::optout::Directives::from_header(v, openwit_http::optout::DEFAULT_TOKEN).nofollow()
}

fn extract_inner(
    html: &str,
    page_url: &Url,
    x_robots_tags: &[&str],
    want_links: bool,
) -> (Extraction, Vec<Url>) {
    let mut ex = Extraction::default();
    let mut links = Vec::new();
    let mut nofollow = x_robots_tags.iter().any(|v| says_nofollow(v));
    for v in x_robots_tags {
        if let Some(d) = opt_out_directive(v) {
            ex.opted_out = Some(d);
            if !want_links || nofollow {
                return (ex, links);
            }
        }
    }
    if !want_links && !has_img_tag(html.as_bytes()) {
        return (ex, links);
    }
    let doc = Html::parse_document(html);
    let scan = PageScan::of(&doc);
    for (name, content) in &scan.metas {
        let name = name.trim();
        if name.eq_ignore_ascii_case("robots") || name.eq_ignore_ascii_case("openwit") {
            nofollow |= says_nofollow(content);
            if let Some(d) = opt_out_directive(content) {
                ex.opted_out = Some(d);
            }
        }
    }
    // Borrow the page URL unless `<base href>` gives another (no clone per page).
    let base_url = scan
        .base_href
        .flatten()
        .and_then(|h| page_url.join(h.trim()).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"));
    let base = base_url.as_ref().unwrap_or(page_url);
    if want_links && !nofollow {
        for el in &scan.links {
            if attr(el, "rel").is_some_and(|r| {
                r.split_whitespace()
                    .any(|t| t.eq_ignore_ascii_case("nofollow"))
            }) {
                continue;
            }
            let Some(h) = attr(el, "href").or_else(|| attr(el, "src")) else {
                continue;
            };
            if let Ok(u) = base.join(h.trim())
                && matches!(u.scheme(), "http" | "https")
            {
                links.push(u);
            }
        }
    }
    if ex.opted_out.is_some() {
        return (ex, links);
    }
    ex.lang = scan
        .html_lang
        .flatten()
        .and_then(|l| clean_text(l).map(|l| l.to_ascii_lowercase()))
        .filter(|l| l.len() <= 35);
    ex.title = scan.title.and_then(element_text);
    // Duplicates (same URL and captions) are found by a hash of the four fields, confirmed
    // against the images kept (all of them carry distinct keys), instead of a set holding a
    // copy of every key.
    let hasher = std::collections::hash_map::RandomState::new();
    let mut seen = HashSet::with_capacity(scan.imgs.len());
    ex.images.reserve(scan.imgs.len());
    let mut one = |img: ElementRef<'_>, outer: Option<ElementRef<'_>>, ex: &mut Extraction| {
        let el = ImgAttrs::of(img.value());
        let Some(raw) = image_url_text(&el) else {
            ex.drop_image(unresolved_image(
                "no_image_url",
                None,
                listed_caption(el.alt, el.title),
            ));
            return;
        };
        let width = parse_dim(el.width);
        let height = parse_dim(el.height);
        if !is_data_uri(raw) && matches!((width, height), (Some(w), Some(h)) if w <= 1 && h <= 1) {
            ex.drop_image(tracking_pixel(base, raw, listed_caption(el.alt, el.title)));
            return;
        }
        let Some(url) = resolve_listed(base, raw, || listed_caption(el.alt, el.title), ex) else {
            return;
        };
        let alt = el.alt.and_then(clean_text);
        let title = el.title.and_then(clean_text);
        let figcaption = figcaption_of(img).or_else(|| outer.and_then(figcaption_of));
        let h = hasher.hash_one((&url, &alt, &title, &figcaption));
        if !seen.insert(h)
            && ex.images.iter().any(|i| {
                i.url == url && i.alt == alt && i.title == title && i.figcaption == figcaption
            })
        {
            ex.drop_image(DroppedImage {
                reason: "duplicate_image",
                url: Some(url),
                caption: alt.or(title).or(figcaption).map(|c| clip_caption(&c)),
                detail: None,
            });
            return;
        }
        ex.images.push(FoundImage {
            url,
            alt,
            title,
            figcaption,
            width,
            height,
        });
    };
    for img in scan.imgs {
        if img.value().name() == "noscript" {
            // the real image of a lazy-loading page; a figure around the noscript captions it
            if let Some(frag) = noscript_fragment(img) {
                for node in frag.tree.nodes() {
                    if node.parent().is_some()
                        && let Some(i) = ElementRef::wrap(node)
                        && i.value().name() == "img"
                    {
                        one(i, Some(img), &mut ex);
                    }
                }
            }
        } else {
            one(img, None, &mut ex);
        }
    }
    (ex, links)
}

/// Where a page came from, for the rows it gives.
#[derive(Debug, Clone, Copy)]
pub struct PageInfo<'a> {
    pub page_url: &'a str,
    pub source_id: &'a str,
    pub fetch_time: Option<i64>,
}

/// Turns an extraction into candidate rows: one per distinct caption of each image (alt, then
/// title, then figcaption). Images without any caption and over-long captions are counted in
/// `drops`.
pub fn to_candidates(
    ex: &Extraction,
    page: PageInfo<'_>,
    drops: &mut Drops,
    out: &mut Vec<Candidate>,
) {
    into_candidates(ex.clone(), page, drops, out)
}

/// [`to_candidates`] for an extraction the caller owns (the WARC and WAT paths): its URLs and
/// captions move into the rows instead of being copied.
pub fn into_candidates(
    ex: Extraction,
    page: PageInfo<'_>,
    drops: &mut Drops,
    out: &mut Vec<Candidate>,
) {
    into_candidates_listed(ex, page, drops, out, None)
}

/// [`into_candidates`] that also lists each image or caption it drops (`no_caption`,
/// `caption_too_long`) in `dropped`, one entry per drop counted in `drops`. The extraction's
/// own `dropped` list is not looked at (take it first).
pub fn into_candidates_listed(
    ex: Extraction,
    page: PageInfo<'_>,
    drops: &mut Drops,
    out: &mut Vec<Candidate>,
    mut dropped: Option<&mut Vec<DroppedImage>>,
) {
    for img in ex.images {
        let mut kept: [Option<(String, CaptionSource)>; 3] = Default::default();
        let mut n = 0;
        for (c, src) in [
            (img.alt, CaptionSource::Alt),
            (img.title, CaptionSource::Title),
            (img.figcaption, CaptionSource::Figcaption),
        ] {
            if let Some(c) = c {
                if c.len() > MAX_CAPTION_BYTES {
                    drops.inc("caption_too_long");
                    if let Some(d) = dropped.as_deref_mut() {
                        d.push(DroppedImage {
                            reason: "caption_too_long",
                            url: Some(img.url.clone()),
                            detail: Some(format!(
                                "{} bytes ({} at most); cut here",
                                c.len(),
                                MAX_CAPTION_BYTES
                            )),
                            caption: Some(clip_caption(&c)),
                        });
                    }
                } else if !kept[..n].iter().flatten().any(|(x, _)| *x == c) {
                    kept[n] = Some((c, src));
                    n += 1;
                }
            }
        }
        if n == 0 {
            drops.inc("no_caption");
            if let Some(d) = dropped.as_deref_mut() {
                d.push(DroppedImage {
                    reason: "no_caption",
                    url: Some(img.url),
                    caption: None,
                    detail: None,
                });
            }
            continue;
        }
        let mut url = Some(img.url);
        for (i, (caption, caption_source)) in kept.into_iter().flatten().enumerate() {
            // the last row takes the URL, the others a copy
            let url = if i + 1 == n {
                url.take().unwrap_or_default()
            } else {
                url.clone().unwrap_or_default()
            };
            out.push(Candidate {
                url,
                caption,
                caption_source,
                page_url: Some(page.page_url.to_string()),
                page_lang: ex.lang.clone(),
                width: img.width,
                height: img.height,
                source_id: page.source_id.to_string(),
                fetch_time: page.fetch_time,
                extra: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Url {
        Url::parse("https://www.example.org/animals/index.html").unwrap()
    }

    fn ex(html: &str) -> Extraction {
        extract(html, &page(), &[])
    }

    #[test]
    fn src_alt_title_and_relative_urls() {
        let e = ex(r#"<html lang="EN-us"><head><title> Farm
            animals </title></head><body>
            <img src="cow.jpg" alt="  A brown
              cow " title="Cow">
            <img src="/img/pig.png" alt="pig">
            <img src="../sheep.webp?x=1#frag">
            <img src="//cdn.example.net/goat.jpg" alt="goat">
            </body></html>"#);
        assert_eq!(e.lang.as_deref(), Some("en-us"));
        assert_eq!(e.title.as_deref(), Some("Farm animals"));
        let urls: Vec<&str> = e.images.iter().map(|i| i.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://www.example.org/animals/cow.jpg",
                "https://www.example.org/img/pig.png",
                "https://www.example.org/sheep.webp?x=1",
                "https://cdn.example.net/goat.jpg",
            ]
        );
        assert_eq!(e.images[0].alt.as_deref(), Some("A brown cow"));
        assert_eq!(e.images[0].title.as_deref(), Some("Cow"));
        assert_eq!(e.images[2].alt, None);
    }

    #[test]
    fn srcset_lazy_and_base() {
        let e = ex(
            r#"<head><base href="https://static.example.com/media/"></head>
            <img src="small.jpg" srcset="small.jpg 320w, large.jpg 1280w, medium.jpg 640w" alt="a">
            <img src="a.jpg" srcset="a.jpg, a@3x.jpg 3x, a@2x.jpg 2x" alt="b">
            <img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" data-src="lazy.jpg" alt="c">
            <img data-srcset="l1.jpg 100w, l2.jpg 200w" alt="d">
            <img src="placeholder.gif" data-original="real.jpg" alt="e">
            <img srcset="https://x.example/a,b.jpg 2x, https://x.example/c.jpg 1x" alt="f">"#,
        );
        let urls: Vec<&str> = e.images.iter().map(|i| i.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://static.example.com/media/large.jpg",
                "https://static.example.com/media/a@3x.jpg",
                "https://static.example.com/media/lazy.jpg",
                "https://static.example.com/media/l2.jpg",
                "https://static.example.com/media/real.jpg",
                "https://x.example/a,b.jpg",
            ]
        );
    }

    #[test]
    fn skips_data_pixels_and_non_http() {
        let e = ex(r#"<img src="data:image/png;base64,iVBORw0KGgo=" alt="x">
            <img src="/t.gif" width="1" height="1" alt="pixel">
            <img src="/t2.gif" width="1px" height="0" alt="pixel2">
            <img src="javascript:alert(1)" alt="js">
            <img src="ftp://example.org/a.jpg" alt="ftp">
            <img src="http://[bad" alt="bad">
            <img alt="no src">
            <img src="/ok.jpg" width="300" height="200.5" alt="ok">"#);
        assert_eq!(e.images.len(), 1);
        assert_eq!(e.images[0].width, Some(300));
        assert_eq!(e.images[0].height, Some(200));
        assert_eq!(e.drops.get("data_uri"), 1);
        assert_eq!(e.drops.get("tracking_pixel"), 2);
        assert_eq!(e.drops.get("non_http_url"), 2);
        assert_eq!(e.drops.get("invalid_url"), 1);
        assert_eq!(e.drops.get("no_image_url"), 1);
    }

    #[test]
    fn figure_and_figcaption() {
        let e = ex(r#"<figure><a href="/x"><img src="dog.jpg"></a>
            <figcaption>A <b>dog</b>
             on a beach</figcaption></figure><img src="other.jpg" alt="o">"#);
        assert_eq!(e.images[0].figcaption.as_deref(), Some("A dog on a beach"));
        assert_eq!(e.images[1].figcaption, None);
    }

    #[test]
    fn opt_out_meta_and_header() {
        for meta in [
            r#"<meta name="robots" content="noai">"#,
            r#"<meta name="ROBOTS" content="index, NoImageAI">"#,
            r#"<meta name="robots" content="noindex,nofollow">"#,
            r#"<meta name="robots" content="noimageindex">"#,
            r#"<meta name="openwit" content="noai">"#,
        ] {
            let e = ex(&format!("<head>{meta}</head><img src=a.jpg alt=a>"));
            assert!(e.opted_out.is_some(), "{meta}");
            assert!(e.images.is_empty());
        }
        let e = ex(
            r#"<head><meta name="robots" content="index, follow"><meta name="description" content="noai"></head><img src=a.jpg alt=a>"#,
        );
        assert!(e.opted_out.is_none());
        assert_eq!(e.images.len(), 1);
        for h in [
            "noai",
            "openwit: noindex",
            "*: noimageindex, nofollow",
            "NoImageAI",
            "all; noai",
            "noindex, unavailable_after: 25 Jun 2010 15:00:00 PST",
            "unavailable_after: 25 Jun 2010 15:00:00 PST",
        ] {
            let e = extract("<img src=a.jpg alt=a>", &page(), &[h]);
            assert!(e.opted_out.is_some(), "{h}");
        }
        // rules scoped to another agent, or a date still to come, leave the page in
        for h in [
            "googlebot: noindex",
            "otherbot: noimageindex, nofollow",
            "unavailable_after: 25 Jun 9999 15:00:00 PST",
        ] {
            let e = extract("<img src=a.jpg alt=a>", &page(), &[h]);
            assert_eq!(e.opted_out, None, "{h}");
            assert_eq!(e.images.len(), 1, "{h}");
        }
        assert!(
            extract(
                "<img src=a.jpg alt=a>",
                &page(),
                &["index, follow", "nofollow"]
            )
            .opted_out
            .is_none()
        );
    }

    #[test]
    fn broken_html_does_not_crash() {
        let inputs = [
            "<img src=",
            "<img src='a.jpg' alt='unterminated",
            "<<<img>>> <img src=\"x.jpg\" alt=\"\u{0}\u{fffd}\">",
            "<html lang><title></title><img srcset=', , ,' alt=x>",
            "<figure><figcaption></figcaption><img src=a.jpg></figure>",
        ];
        for i in inputs {
            let _ = ex(i);
        }
        let e = ex("<img src=\"x.jpg\" alt=\"\u{0}ok\">");
        assert_eq!(e.images.len(), 1);
    }

    /// (file name, caption, caption source) of each row.
    fn file_caption_source(rows: &[Candidate]) -> Vec<(&str, &str, &str)> {
        rows.iter()
            .map(|r| {
                (
                    r.url.rsplit('/').next().unwrap(),
                    r.caption.as_str(),
                    r.caption_source.as_str(),
                )
            })
            .collect()
    }

    #[test]
    fn candidates_one_row_per_distinct_caption() {
        let e = ex(
            r#"<html lang="en"><figure><img src="a.jpg" alt="Red car" title="Red car"><figcaption>A red car parked</figcaption></figure>
            <img src="b.jpg"><img src="c.jpg" title="Blue boat">"#,
        );
        let mut drops = Drops::default();
        let mut rows = Vec::new();
        let p = PageInfo {
            page_url: "https://www.example.org/animals/index.html",
            source_id: "seed",
            fetch_time: Some(5),
        };
        to_candidates(&e, p, &mut drops, &mut rows);
        let got = file_caption_source(&rows);
        assert_eq!(
            got,
            [
                ("a.jpg", "Red car", "alt"),
                ("a.jpg", "A red car parked", "figcaption"),
                ("c.jpg", "Blue boat", "title")
            ]
        );
        assert_eq!(drops.get("no_caption"), 1);
        assert_eq!(rows[0].page_lang.as_deref(), Some("en"));
        assert_eq!(rows[0].fetch_time, Some(5));
    }

    #[test]
    fn over_long_and_repeated_captions() {
        let long = "x".repeat(MAX_CAPTION_BYTES + 1);
        let html = format!(
            "<img src=e.jpg alt={long} title=t><img src=f.jpg alt={long}>\
             <figure><img src=g.jpg title=g alt=a><figcaption>c</figcaption></figure>\
             <figure><img src=d.jpg alt=x title=y><figcaption>x</figcaption></figure>"
        );
        let p = PageInfo {
            page_url: "https://www.example.org/animals/index.html",
            source_id: "seed",
            fetch_time: Some(5),
        };
        let mut drops = Drops::default();
        let mut rows = Vec::new();
        into_candidates(ex(&html), p, &mut drops, &mut rows);
        let got = file_caption_source(&rows);
        assert_eq!(
            got,
            [
                ("e.jpg", "t", "title"),
                ("g.jpg", "a", "alt"),
                ("g.jpg", "g", "title"),
                ("g.jpg", "c", "figcaption"),
                ("d.jpg", "x", "alt"),
                ("d.jpg", "y", "title"),
            ]
        );
        assert_eq!(drops.get("caption_too_long"), 2);
        assert_eq!(drops.get("no_caption"), 1);
        assert!(
            rows.iter()
                .all(|r| r.source_id == "seed" && r.fetch_time == Some(5))
        );
    }

    #[test]
    fn links_and_nofollow() {
        let html = r#"<base href="/docs/"><a href="a.html#x">a</a><a href="mailto:x@y">m</a>
            <a href="/b.html" rel="nofollow">b</a><area href="c.html"><iframe src="https://o.example/f"></iframe>"#;
        let (_, links) = extract_with_links(html, &page(), &[]);
        let l: Vec<String> = links.iter().map(|u| u.to_string()).collect();
        assert_eq!(
            l,
            [
                "https://www.example.org/docs/a.html#x",
                "https://www.example.org/docs/c.html",
                "https://o.example/f"
            ]
        );
        let (_, links) = extract_with_links(
            &format!("<meta name=robots content='noindex, nofollow'>{html}"),
            &page(),
            &[],
        );
        assert!(links.is_empty());
        let (e, links) = extract_with_links(
            &format!("<meta name=robots content=noai>{html}<img src=x.jpg alt=x>"),
            &page(),
            &[],
        );
        assert!(e.opted_out.is_some() && e.images.is_empty());
        assert_eq!(links.len(), 3);
        let (_, links) = extract_with_links(html, &page(), &["openwit: none"]);
        assert!(links.is_empty());
        // rules for another agent are not ours
        let (e, links) = extract_with_links(html, &page(), &["otherbot: none"]);
        assert!(e.opted_out.is_none());
        assert_eq!(links.len(), 3);
    }

    #[test]
    fn srcset_parser() {
        assert_eq!(largest_srcset("a.jpg 1x, b.jpg 2x"), Some("b.jpg"));
        assert_eq!(largest_srcset("a.jpg 100w,b.jpg 50w"), Some("a.jpg"));
        assert_eq!(largest_srcset("a.jpg"), Some("a.jpg"));
        assert_eq!(largest_srcset("  "), None);
        assert_eq!(largest_srcset("a.jpg 2x, b.jpg"), Some("a.jpg"));
        // a comma inside a URL token belongs to the URL (HTML spec)
        assert_eq!(largest_srcset("a.jpg,b.jpg 3x"), Some("a.jpg,b.jpg"));
        assert_eq!(largest_srcset("a.jpg, b.jpg 3x"), Some("b.jpg"));
    }

    /// Pages where the parser moves or drops nodes (foster parenting, the adoption agency, a
    /// `<frameset>` that detaches `<body>`, a second `<html>`, foreign content, templates), or
    /// where "the first" element matters (several `<base>`, `<title>`, robots metas).
    const TRICKY_PAGES: [&str; 18] = [
        r#"<table><img src=a.jpg alt=fostered><tr><td><img src=b.jpg alt=cell></td></tr><img src=c.jpg alt=after></table>"#,
        r#"<a href=/x><p><img src=a.jpg alt=adopted></a><img src=a.jpg alt=adopted></p>"#,
        r#"<b><i><figure><img src=f.jpg></b><figcaption>fig <em>one</em></figcaption></i></figure>"#,
        r#"<body><meta name=robots content=noai><title>t</title><base href=/b/><frameset><frame src=f.html></frameset>"#,
        r#"<html lang=fr><body><html lang=de data-x=1><img src=a.jpg alt=a>"#,
        r#"<svg><title>svg title</title><image href=s.png /><a href=/svg-link>s</a></svg><title>html title</title><img src=i.png alt=i>"#,
        r#"<math><mi><img src=m.png alt=math></mi></math><svg xmlns:xlink="http://www.w3.org/1999/xlink"><a xlink:href="/xl">x</a><meta name=robots content=noai></svg>"#,
        r#"<template><img src=t.png alt=templated><base href="https://other.example/"></template><img src=u.png alt=u>"#,
        r#"<base><base href="javascript:x"><base href="https://b.example/c/"><img src=a.jpg alt=a>"#,
        r#"<meta name=robots content="index"><meta name=robots><meta content=noai><meta name=" Robots " content="noimageai, nofollow"><meta name=openwit content=noindex><img src=a.jpg alt=a><a href=b.html>b</a>"#,
        r#"<figure><figure><img src=inner.jpg></figure><figcaption>outer</figcaption></figure><figure><figcaption>first</figcaption><figcaption>second</figcaption><img src=x.jpg><img src=x.jpg><img src=y.jpg></figure>"#,
        r#"<img src=d.jpg alt=dup><img src=d.jpg alt=dup><img src=d.jpg#frag alt=dup><img src=d.jpg alt=dup title=t><img src=d.jpg alt=" dup ">"#,
        r#"<title></title><title>second</title><img src=a.jpg>"#,
        r#"<frame src=f1.html href=f2.html><iframe src=i.html rel=nofollow></iframe><area href=ar.html rel="x NOFOLLOW"><a href="  spaced.html  ">s</a><a href="">empty</a><a>none</a>"#,
        r#"<select><img src=s.jpg alt=select><option><img src=o.jpg alt=option></select><noscript><img src=n.jpg alt=noscript></noscript>"#,
        r#"<table><tr><td><figure><img src=t.jpg></td></tr></table><figcaption>late</figcaption>"#,
        "<p><img src=a.jpg alt=a><html><head><title>late head</title></head><img src=b.jpg alt=b></html></html><img src=c.jpg alt=c>",
        "",
    ];

    /// Random pages from pieces of markup, nested and left unclosed at random.
    fn soup(rng: &mut impl rand::Rng) -> String {
        const PIECES: [&str; 36] = [
            "<noscript><img src=ns.jpg alt=N></noscript>",
            "<figure><noscript><img src=nf.jpg>",
            "<img src=a.jpg alt=A>",
            "<img src=/b.png title='B b'>",
            "<img srcset='s.jpg 1x, l.jpg 2x' alt=S>",
            "<img data-src=lazy.jpg src=data:x alt=L>",
            "<img src=p.gif width=1 height=1 alt=P>",
            "<img alt=none>",
            "<figure>",
            "</figure>",
            "<figcaption>cap ",
            "</figcaption>",
            "<table>",
            "<tr><td>",
            "</table>",
            "<a href=link.html>",
            "</a>",
            "<b>",
            "</b>",
            "<p>",
            "<svg>",
            "</svg>",
            "<title>T ",
            "</title>",
            "<base href=/base/>",
            "<base href=https://cdn.example/>",
            "<meta name=robots content=noai>",
            "<meta name=robots content=nofollow>",
            "<html lang=XX>",
            "<template>",
            "</template>",
            "<frameset>",
            "<iframe src=if.html></iframe>",
            "<select>",
            "text ",
            "<!-- c -->",
        ];
        let n = rng.random_range(0..40);
        (0..n)
            .map(|_| PIECES[rng.random_range(0..PIECES.len())])
            .collect()
    }

    #[test]
    fn single_pass_matches_the_selector_passes() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut pages: Vec<String> = TRICKY_PAGES.iter().map(|p| p.to_string()).collect();
        pages.extend((0..50).map(|i| crate::fixtures::html_page(&mut rng, i, 12)));
        pages.extend((0..2000).map(|_| soup(&mut rng)));
        let headers: [&[&str]; 3] = [&[], &["nofollow"], &["otherbot: noai"]];
        let mut with_images = 0;
        for (i, html) in pages.iter().enumerate() {
            for h in headers {
                let new = extract_with_links(html, &page(), h);
                let old = crate::extract_reference::extract_with_links(html, &page(), h);
                assert_eq!(new, old, "page {i} headers {h:?}: {html}");
                assert_eq!(
                    extract(html, &page(), h),
                    crate::extract_reference::extract(html, &page(), h),
                    "page {i} headers {h:?}: {html}"
                );
                with_images += usize::from(!new.0.images.is_empty());
            }
        }
        // the comparison is not vacuous
        assert!(with_images > 1000, "{with_images}");
        let e = ex(TRICKY_PAGES[0]);
        let alts: Vec<_> = e.images.iter().filter_map(|i| i.alt.as_deref()).collect();
        assert_eq!(alts, ["fostered", "cell", "after"]);
    }

    #[test]
    fn noscript_images_of_lazy_pages() {
        let e = ex(
            r#"<head><noscript><img src="/head.jpg" alt="in head"></noscript></head><body>
            <img class="lazy" src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" alt="A red car">
            <noscript><img src="/real/car.jpg" alt="A red car" width="640" height="480"></noscript>
            <img src="/p.gif" data-src="/real/bus.jpg" alt="Bus">
            <noscript><img src="/real/bus.jpg" alt="Bus"></noscript>
            <figure><noscript><IMG SRC='/real/boat.jpg'></noscript><figcaption>A boat, à voile</figcaption></figure>
            <noscript><p>no images here</p></noscript></body>"#,
        );
        let got: Vec<(&str, Option<&str>, Option<&str>)> = e
            .images
            .iter()
            .map(|i| (i.url.as_str(), i.alt.as_deref(), i.figcaption.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("https://www.example.org/head.jpg", Some("in head"), None),
                (
                    "https://www.example.org/real/car.jpg",
                    Some("A red car"),
                    None
                ),
                ("https://www.example.org/real/bus.jpg", Some("Bus"), None),
                (
                    "https://www.example.org/real/boat.jpg",
                    None,
                    Some("A boat, à voile")
                ),
            ]
        );
        assert_eq!(e.images[1].width, Some(640));
        assert_eq!(e.drops.get("data_uri"), 1);
        // the lazy <img> and its <noscript> copy are one image
        assert_eq!(e.drops.get("duplicate_image"), 1);
    }

    #[test]
    fn fast_precheck() {
        assert!(has_img_tag(b"<p><IMG src=x>"));
        assert!(!has_img_tag(b"<p>no images here <i>x</i></p>"));
    }
}
