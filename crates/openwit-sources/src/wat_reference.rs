//! The previous WAT parser (JSON into `serde_json::Value`), kept as the oracle that
//! [`crate::wat::parse_wat`] is checked against (unit tests and the `wat_parse` fuzz target):
//! both must give the same result on every input. Compiled only for tests and with the
//! `fuzzing` feature (the fuzz crate turns it on): it is not part of the product.

use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::wat::WatPage;

use crate::dropped::{DroppedImage, clip_caption};
use crate::extract::{
    Extraction, FoundImage, clean_text, listed_caption, opt_out_directive, resolve_listed,
    unresolved_image,
};

#[derive(Deserialize)]
struct Wat {
    #[serde(rename = "Envelope")]
    envelope: Envelope,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "WARC-Header-Metadata", default)]
    warc: WarcMeta,
    #[serde(rename = "Payload-Metadata", default)]
    payload: PayloadMeta,
}

#[derive(Deserialize, Default)]
struct WarcMeta {
    #[serde(rename = "WARC-Type", default)]
    warc_type: Option<String>,
    #[serde(rename = "WARC-Target-URI", default)]
    target: Option<String>,
    #[serde(rename = "WARC-Date", default)]
    date: Option<String>,
}

#[derive(Deserialize, Default)]
struct PayloadMeta {
    #[serde(rename = "HTTP-Response-Metadata", default)]
    response: Option<ResponseMeta>,
}

#[derive(Deserialize, Default)]
struct ResponseMeta {
    #[serde(rename = "Headers", default)]
    headers: Option<serde_json::Map<String, Value>>,
    #[serde(rename = "HTML-Metadata", default)]
    html: Option<HtmlMeta>,
}

#[derive(Deserialize, Default)]
struct HtmlMeta {
    #[serde(rename = "Head", default)]
    head: Option<Head>,
    #[serde(rename = "Links", default)]
    links: Vec<Value>,
}

#[derive(Deserialize, Default)]
struct Head {
    #[serde(rename = "Title", default)]
    title: Option<Value>,
    #[serde(rename = "Base", default)]
    base: Option<Value>,
    #[serde(rename = "Metas", default)]
    metas: Vec<Value>,
}

fn as_str(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
}

/// Parses one WAT JSON record. `Ok(None)`: a record that is not an HTML response (request,
/// warcinfo, metadata). `Err`: JSON that does not parse or has no envelope.
/// The previous `parse_wat`.
pub fn parse_wat_value(json: &[u8]) -> Result<Option<WatPage>, String> {
    let wat: Wat = serde_json::from_slice(json).map_err(|e| format!("WAT JSON: {e}"))?;
    let env = wat.envelope;
    if env.warc.warc_type.as_deref() != Some("response") {
        return Ok(None);
    }
    let Some(page_url) = env.warc.target.as_deref().map(str::trim) else {
        return Err("WAT response without WARC-Target-URI".into());
    };
    let Ok(page) = Url::parse(page_url) else {
        return Err(format!(
            "WAT response with an invalid WARC-Target-URI `{page_url}`"
        ));
    };
    let Some(resp) = env.payload.response else {
        return Ok(None);
    };
    let mut ex = Extraction::default();
    let out = |ex: Extraction| {
        Ok(Some(WatPage {
            page_url: page.to_string(),
            warc_date: env.warc.date.clone(),
            extraction: ex,
        }))
    };
    if let Some(h) = &resp.headers {
        for (k, v) in h {
            if k.eq_ignore_ascii_case("x-robots-tag") {
                let vals: Vec<&str> = match v {
                    Value::String(s) => vec![s.as_str()],
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                    _ => vec![],
                };
                if let Some(d) = vals.into_iter().find_map(opt_out_directive) {
                    ex.opted_out = Some(d);
                    return out(ex);
                }
            }
        }
    }
    let Some(html) = resp.html else {
        return out(ex);
    };
    let head = html.head.unwrap_or_default();
    for m in &head.metas {
        let name = as_str(m.get("name")).unwrap_or("");
        if (name.eq_ignore_ascii_case("robots") || name.eq_ignore_ascii_case("openwit"))
            && let Some(d) = opt_out_directive(as_str(m.get("content")).unwrap_or(""))
        {
            ex.opted_out = Some(d);
            return out(ex);
        }
    }
    ex.title = as_str(head.title.as_ref()).and_then(clean_text);
    let base = as_str(head.base.as_ref())
        .and_then(|b| page.join(b.trim()).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .unwrap_or_else(|| page.clone());
    let mut seen = std::collections::HashSet::new();
    for l in &html.links {
        if as_str(l.get("path")) != Some("IMG@/src") {
            continue;
        }
        let Some(raw) = as_str(l.get("url")) else {
            ex.drop_image(unresolved_image(
                "no_image_url",
                None,
                listed_caption(as_str(l.get("alt")), as_str(l.get("title"))),
            ));
            continue;
        };
        let Some(url) = resolve_listed(
            &base,
            raw,
            || listed_caption(as_str(l.get("alt")), as_str(l.get("title"))),
            &mut ex,
        ) else {
            continue;
        };
        let alt = as_str(l.get("alt")).and_then(clean_text);
        let title = as_str(l.get("title")).and_then(clean_text);
        if !seen.insert((url.clone(), alt.clone(), title.clone())) {
            ex.drop_image(DroppedImage {
                reason: "duplicate_image",
                url: Some(url),
                caption: alt.or(title).map(|c| clip_caption(&c)),
                detail: None,
            });
            continue;
        }
        ex.images.push(FoundImage {
            url,
            alt,
            title,
            figcaption: None,
            width: None,
            height: None,
        });
    }
    out(ex)
}
