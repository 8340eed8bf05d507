//! Common Crawl WAT records: the JSON metadata of a fetched page. Image links are the
//! `Envelope.Payload-Metadata.HTTP-Response-Metadata.HTML-Metadata.Links` entries whose `path`
//! is `IMG@/src`, with `url` (often relative: resolved against `Head.Base` and the page URL)
//! and an optional `alt`/`title`. Opt-outs (`X-Robots-Tag` headers, robots `<meta>` in
//! `Head.Metas`) are honoured as in the HTML path.
//!
//! ```
//! let json = br#"{"Envelope":{"WARC-Header-Metadata":{"WARC-Type":"response","WARC-Target-URI":"http://e.com/a/"},
//!   "Payload-Metadata":{"HTTP-Response-Metadata":{"HTML-Metadata":{"Links":[
//!     {"path":"IMG@/src","url":"cat.jpg","alt":"a cat"},{"path":"A@/href","url":"/x"}]}}}}}"#;
//! let page = openwit_sources::wat::parse_wat(json).unwrap().unwrap();
//! assert_eq!(page.page_url, "http://e.com/a/");
//! assert_eq!(page.extraction.images[0].url, "http://e.com/a/cat.jpg");
//! ```

use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::extract::{Extraction, FoundImage, clean_text, opt_out_directive, resolve_image_url};

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

/// One page of a WAT file.
#[derive(Debug, Clone, PartialEq)]
pub struct WatPage {
    pub page_url: String,
    pub warc_date: Option<String>,
    pub extraction: Extraction,
}

fn as_str(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
}

/// Parses one WAT JSON record. `Ok(None)`: a record that is not an HTML response (request,
/// warcinfo, metadata). `Err`: JSON that does not parse or has no envelope.
pub fn parse_wat(json: &[u8]) -> Result<Option<WatPage>, String> {
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
            ex.drops.inc("no_image_url");
            continue;
        };
        let Some(url) = resolve_image_url(&base, raw, &mut ex.drops) else {
            continue;
        };
        let alt = as_str(l.get("alt")).and_then(clean_text);
        let title = as_str(l.get("title")).and_then(clean_text);
        if !seen.insert((url.clone(), alt.clone(), title.clone())) {
            ex.drops.inc("duplicate_image");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn wat(links: &str, extra_head: &str, headers: &str) -> Vec<u8> {
        format!(
            r#"{{"Container":{{"Filename":"x.warc.gz"}},"Envelope":{{"Format":"WARC","WARC-Header-Length":"300",
            "WARC-Header-Metadata":{{"WARC-Type":"response","WARC-Date":"2024-01-02T03:04:05Z","WARC-Target-URI":"https://www.e.org/dir/page.html"}},
            "Payload-Metadata":{{"Actual-Content-Type":"application/http; msgtype=response",
              "HTTP-Response-Metadata":{{"Response-Message":{{"Status":"200"}},"Headers":{{"Content-Type":"text/html"{headers}}},
                "HTML-Metadata":{{"Head":{{"Title":" A  page ",{extra_head}"Metas":[{{"name":"description","content":"x"}}]}},"Links":[{links}]}}}}}}}}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn links_base_and_drops() {
        let j = wat(
            r#"{"path":"A@/href","url":"/a","text":"x"},
               {"path":"IMG@/src","url":"img/cat.jpg","alt":" A cat "},
               {"path":"IMG@/src","url":"/dog.png","title":"Dog"},
               {"path":"IMG@/src","url":"data:image/gif;base64,AAAA","alt":"x"},
               {"path":"IMG@/src","url":"javascript:void(0)","alt":"x"},
               {"path":"IMG@/src","alt":"no url"},
               {"path":"IMG@/src","url":"img/cat.jpg","alt":" A cat "}"#,
            r#""Base":"https://cdn.e.org/base/","#,
            "",
        );
        let p = parse_wat(&j).unwrap().unwrap();
        assert_eq!(p.page_url, "https://www.e.org/dir/page.html");
        assert_eq!(p.warc_date.as_deref(), Some("2024-01-02T03:04:05Z"));
        let e = &p.extraction;
        assert_eq!(e.title.as_deref(), Some("A page"));
        let urls: Vec<&str> = e.images.iter().map(|i| i.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://cdn.e.org/base/img/cat.jpg",
                "https://cdn.e.org/dog.png"
            ]
        );
        assert_eq!(e.images[0].alt.as_deref(), Some("A cat"));
        assert_eq!(e.images[1].title.as_deref(), Some("Dog"));
        assert_eq!(e.drops.get("data_uri"), 1);
        assert_eq!(e.drops.get("non_http_url"), 1);
        assert_eq!(e.drops.get("no_image_url"), 1);
        assert_eq!(e.drops.get("duplicate_image"), 1);
    }

    #[test]
    fn opt_outs() {
        let j = wat(
            r#"{"path":"IMG@/src","url":"a.jpg","alt":"a"}"#,
            "",
            r#","X-Robots-Tag":"otherbot: noai""#,
        );
        assert_eq!(
            parse_wat(&j)
                .unwrap()
                .unwrap()
                .extraction
                .opted_out
                .as_deref(),
            Some("noai")
        );
        let j = br#"{"Envelope":{"WARC-Header-Metadata":{"WARC-Type":"response","WARC-Target-URI":"http://e.com/"},
            "Payload-Metadata":{"HTTP-Response-Metadata":{"HTML-Metadata":{"Head":{"Metas":[{"name":"ROBOTS","content":"noimageindex"}]},
            "Links":[{"path":"IMG@/src","url":"a.jpg","alt":"a"}]}}}}}"#;
        let p = parse_wat(j).unwrap().unwrap();
        assert_eq!(p.extraction.opted_out.as_deref(), Some("noimageindex"));
        assert!(p.extraction.images.is_empty());
    }

    #[test]
    fn non_response_and_garbage() {
        let j = br#"{"Envelope":{"WARC-Header-Metadata":{"WARC-Type":"request","WARC-Target-URI":"http://e.com/"}}}"#;
        assert_eq!(parse_wat(j).unwrap(), None);
        assert!(parse_wat(b"{not json").is_err());
        assert!(
            parse_wat(br#"{"Envelope":{"WARC-Header-Metadata":{"WARC-Type":"response"}}}"#)
                .is_err()
        );
        assert!(parse_wat(br#"{"Envelope":{"WARC-Header-Metadata":{"WARC-Type":"response","WARC-Target-URI":"::"}}}"#).is_err());
        assert!(parse_wat(br#"{"Envelope":5}"#).is_err());
        // links of the wrong types are skipped, not fatal
        let j = br#"{"Envelope":{"WARC-Header-Metadata":{"WARC-Type":"response","WARC-Target-URI":"http://e.com/"},
            "Payload-Metadata":{"HTTP-Response-Metadata":{"HTML-Metadata":{"Links":[1,"x",{"path":"IMG@/src","url":7}]}}}}}"#;
        let p = parse_wat(j).unwrap().unwrap();
        assert!(p.extraction.images.is_empty());
    }
}
