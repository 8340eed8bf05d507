//! The previous HTML extractor (one `scraper` selector pass per element kind, five per page),
//! kept as the oracle that [`crate::extract`]'s single pass over the parsed page is checked
//! against (unit tests and the `html_extract` fuzz target): both must give the same
//! extraction and links on every input. Compiled only for tests and with the `fuzzing`
//! feature (the fuzz crate turns it on): it is not part of the product.

use std::collections::HashSet;
use std::sync::LazyLock;

use scraper::{ElementRef, Html, Selector};
use url::Url;

use crate::dropped::{DroppedImage, clip_caption};
use crate::extract::{
    Extraction, FoundImage, ImgAttrs, clean_text, has_img_tag, image_url_text, is_data_uri,
    listed_caption, opt_out_directive, parse_dim, resolve_listed, says_nofollow, tracking_pixel,
    unresolved_image,
};

macro_rules! sel {
    ($name:ident, $css:expr) => {
        static $name: LazyLock<Selector> = LazyLock::new(|| Selector::parse($css).unwrap());
    };
}
sel!(IMG, "img");
sel!(IMG_OR_NOSCRIPT, "img, noscript");
sel!(BASE, "base[href]");
sel!(HTML, "html");
sel!(TITLE, "title");
sel!(META, "meta[name][content]");
sel!(FIGCAPTION, "figcaption");
sel!(LINKS, "a[href], area[href], frame[src], iframe[src]");

/// [`crate::extract::extract`] as it was.
pub fn extract(html: &str, page_url: &Url, x_robots_tags: &[&str]) -> Extraction {
    extract_inner(html, page_url, x_robots_tags, false).0
}

/// [`crate::extract::extract_with_links`] as it was.
pub fn extract_with_links(
    html: &str,
    page_url: &Url,
    x_robots_tags: &[&str],
) -> (Extraction, Vec<Url>) {
    extract_inner(html, page_url, x_robots_tags, true)
}

fn figcaption_of(img: &ElementRef<'_>) -> Option<String> {
    for anc in img.ancestors() {
        if let Some(el) = ElementRef::wrap(anc)
            && el.value().name() == "figure"
        {
            return el
                .select(&FIGCAPTION)
                .next()
                .and_then(|fc| clean_text(&fc.text().collect::<String>()));
        }
    }
    None
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
    for m in doc.select(&META) {
        let name = m.value().attr("name").unwrap_or("").trim();
        if name.eq_ignore_ascii_case("robots") || name.eq_ignore_ascii_case("openwit") {
            let content = m.value().attr("content").unwrap_or("");
            nofollow |= says_nofollow(content);
            if let Some(d) = opt_out_directive(content) {
                ex.opted_out = Some(d);
            }
        }
    }
    let base = doc
        .select(&BASE)
        .next()
        .and_then(|b| b.value().attr("href"))
        .and_then(|h| page_url.join(h.trim()).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .unwrap_or_else(|| page_url.clone());
    if want_links && !nofollow {
        for a in doc.select(&LINKS) {
            let el = a.value();
            if el.attr("rel").is_some_and(|r| {
                r.split_whitespace()
                    .any(|t| t.eq_ignore_ascii_case("nofollow"))
            }) {
                continue;
            }
            let Some(h) = el.attr("href").or_else(|| el.attr("src")) else {
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
    ex.lang = doc
        .select(&HTML)
        .next()
        .and_then(|h| h.value().attr("lang"))
        .and_then(|l| clean_text(l).map(|l| l.to_ascii_lowercase()))
        .filter(|l| l.len() <= 35);
    ex.title = doc
        .select(&TITLE)
        .next()
        .and_then(|t| clean_text(&t.text().collect::<String>()));
    let mut seen = HashSet::new();
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
            ex.drop_image(tracking_pixel(&base, raw, listed_caption(el.alt, el.title)));
            return;
        }
        let Some(url) = resolve_listed(&base, raw, || listed_caption(el.alt, el.title), ex) else {
            return;
        };
        let alt = el.alt.and_then(clean_text);
        let title = el.title.and_then(clean_text);
        let figcaption = figcaption_of(&img).or_else(|| outer.and_then(|o| figcaption_of(&o)));
        let key = (url.clone(), alt.clone(), title.clone(), figcaption.clone());
        if !seen.insert(key) {
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
    for el in doc.select(&IMG_OR_NOSCRIPT) {
        if el.value().name() == "img" {
            one(el, None, &mut ex);
        } else if let Some(frag) = crate::extract::noscript_fragment(el) {
            for img in frag.select(&IMG) {
                one(img, Some(el), &mut ex);
            }
        }
    }
    (ex, links)
}
