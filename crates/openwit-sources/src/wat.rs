//! Common Crawl WAT records: the JSON metadata of a fetched page. Image links are the
//! `Envelope.Payload-Metadata.HTTP-Response-Metadata.HTML-Metadata.Links` entries whose `path`
//! is `IMG@/src`, with `url` (often relative: resolved against `Head.Base` and the page URL)
//! and an optional `alt`/`title`. Opt-outs (`X-Robots-Tag` headers, robots `<meta>` in
//! `Head.Metas`) are honoured as in the HTML path.
//!
//! The JSON is read into borrowed structs holding only the fields used (strings without escapes
//! are not copied); everything else is skipped. It accepts and rejects exactly what a parse
//! into `serde_json::Value` would: where the previous parser read a `Value` this one walks the
//! value with `Skip` (same depth limit, same UTF-8 and number checks), and a repeated key
//! means the last value, as in a JSON map. `wat_reference` keeps that previous parser as the
//! oracle of the tests and the `wat_parse` fuzz target (compiled only for tests and with the
//! `fuzzing` feature).
//!
//! ```
//! let json = br#"{"Envelope":{"WARC-Header-Metadata":{"WARC-Type":"response","WARC-Target-URI":"http://e.com/a/"},
//!   "Payload-Metadata":{"HTTP-Response-Metadata":{"HTML-Metadata":{"Links":[
//!     {"path":"IMG@/src","url":"cat.jpg","alt":"a cat"},{"path":"A@/href","url":"/x"}]}}}}}"#;
//! let page = openwit_sources::wat::parse_wat(json).unwrap().unwrap();
//! assert_eq!(page.page_url, "http://e.com/a/");
//! assert_eq!(page.extraction.images[0].url, "http://e.com/a/cat.jpg");
//! ```

use std::borrow::Cow;
use std::fmt;

use std::hash::BuildHasher;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use url::Url;

use crate::dropped::{DroppedImage, clip_caption};
use crate::extract::{
    Extraction, FoundImage, clean_text, listed_caption, opt_out_directive, resolve_listed,
    unresolved_image,
};

#[derive(Deserialize)]
struct Wat<'a> {
    #[serde(rename = "Envelope", borrow)]
    envelope: Envelope<'a>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "WARC-Header-Metadata", default, borrow)]
    warc: WarcMeta<'a>,
    #[serde(rename = "Payload-Metadata", default, borrow)]
    payload: PayloadMeta<'a>,
}

#[derive(Deserialize, Default)]
struct WarcMeta<'a> {
    #[serde(rename = "WARC-Type", default, borrow)]
    warc_type: Option<Cow<'a, str>>,
    #[serde(rename = "WARC-Target-URI", default, borrow)]
    target: Option<Cow<'a, str>>,
    #[serde(rename = "WARC-Date", default, borrow)]
    date: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct PayloadMeta<'a> {
    #[serde(rename = "HTTP-Response-Metadata", default, borrow)]
    response: Option<ResponseMeta<'a>>,
}

#[derive(Deserialize, Default)]
struct ResponseMeta<'a> {
    #[serde(rename = "Headers", default, borrow)]
    headers: Option<Headers<'a>>,
    #[serde(rename = "HTML-Metadata", default, borrow)]
    html: Option<HtmlMeta<'a>>,
}

#[derive(Deserialize, Default)]
struct HtmlMeta<'a> {
    #[serde(rename = "Head", default, borrow)]
    head: Option<Head<'a>>,
    #[serde(rename = "Links", default, borrow)]
    links: Vec<Obj<'a>>,
}

#[derive(Deserialize, Default)]
struct Head<'a> {
    #[serde(rename = "Title", default, borrow)]
    title: Option<MaybeStr<'a>>,
    #[serde(rename = "Base", default, borrow)]
    base: Option<MaybeStr<'a>>,
    #[serde(rename = "Metas", default, borrow)]
    metas: Vec<Obj<'a>>,
}

/// Any JSON value, checked as a `serde_json::Value` parse would check it, and dropped.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MaybeStrVisitor).map(|_| Skip)
    }
}

/// Any JSON value; the string when it is one.
#[derive(Default)]
struct MaybeStr<'a>(Option<Cow<'a, str>>);

struct MaybeStrVisitor;

impl<'de> Visitor<'de> for MaybeStrVisitor {
    type Value = MaybeStr<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(MaybeStr(Some(Cow::Borrowed(v))))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(MaybeStr(Some(Cow::Owned(v.to_owned()))))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(MaybeStr(Some(Cow::Owned(v))))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(MaybeStr(None))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(MaybeStr(None))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(MaybeStr(None))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(MaybeStr(None))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(MaybeStr(None))
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(MaybeStr(None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(MaybeStr(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<Key<'de>, Skip>()?.is_some() {}
        Ok(MaybeStr(None))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for MaybeStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MaybeStrVisitor)
    }
}

/// An object key (borrowed unless it has escapes).
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A `Links` or `Metas` entry: the string fields used (a later repeated key wins; a value that
/// is not a string counts as absent). Entries that are not objects have none.
#[derive(Default)]
struct Obj<'a> {
    path: Option<Cow<'a, str>>,
    url: Option<Cow<'a, str>>,
    alt: Option<Cow<'a, str>>,
    title: Option<Cow<'a, str>>,
    name: Option<Cow<'a, str>>,
    content: Option<Cow<'a, str>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Obj<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Obj<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut o = Obj::default();
                while let Some(k) = map.next_key::<Key<'de>>()? {
                    let slot = match k.0.as_ref() {
                        "path" => &mut o.path,
                        "url" => &mut o.url,
                        "alt" => &mut o.alt,
                        "title" => &mut o.title,
                        "name" => &mut o.name,
                        "content" => &mut o.content,
                        _ => {
                            map.next_value::<Skip>()?;
                            continue;
                        }
                    };
                    *slot = map.next_value::<MaybeStr<'de>>()?.0;
                }
                Ok(o)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                MaybeStrVisitor.visit_seq(seq).map(|_| Obj::default())
            }
            fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<Self::Value, E> {
                Ok(Obj::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Obj::default())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Obj::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Obj::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Obj::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Obj::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Obj::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// The `X-Robots-Tag` values of the response `Headers` object, as `(exact key, strings)`: a
/// string value gives itself, an array its strings, anything else nothing.
struct Headers<'a>(Vec<(Cow<'a, str>, Vec<Cow<'a, str>>)>);

impl<'de: 'a, 'a> Deserialize<'de> for Headers<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vals<'a>(Vec<Cow<'a, str>>);
        impl<'de> Deserialize<'de> for Vals<'de> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = Vals<'de>;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("any JSON value")
                    }
                    fn visit_seq<A: SeqAccess<'de>>(
                        self,
                        mut seq: A,
                    ) -> Result<Self::Value, A::Error> {
                        let mut out = Vec::new();
                        while let Some(MaybeStr(s)) = seq.next_element::<MaybeStr<'de>>()? {
                            out.extend(s);
                        }
                        Ok(Vals(out))
                    }
                    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                        MaybeStrVisitor.visit_map(map).map(|_| Vals(Vec::new()))
                    }
                    fn visit_borrowed_str<E: de::Error>(
                        self,
                        v: &'de str,
                    ) -> Result<Self::Value, E> {
                        Ok(Vals(vec![Cow::Borrowed(v)]))
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                        Ok(Vals(vec![Cow::Owned(v.to_owned())]))
                    }
                    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                        Ok(Vals(Vec::new()))
                    }
                    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                        Ok(Vals(Vec::new()))
                    }
                    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                        Ok(Vals(Vec::new()))
                    }
                    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                        Ok(Vals(Vec::new()))
                    }
                    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                        Ok(Vals(Vec::new()))
                    }
                }
                d.deserialize_any(V)
            }
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Headers<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out: Vec<(Cow<'de, str>, Vec<Cow<'de, str>>)> = Vec::new();
                while let Some(k) = map.next_key::<Key<'de>>()? {
                    if !k.0.eq_ignore_ascii_case("x-robots-tag") {
                        map.next_value::<Skip>()?;
                        continue;
                    }
                    let v = map.next_value::<Vals<'de>>()?.0;
                    // a repeated key: the last value wins, as in a JSON map
                    match out.iter_mut().find(|(ok, _)| *ok == k.0) {
                        Some(slot) => slot.1 = v,
                        None => out.push((k.0, v)),
                    }
                }
                // keys in the order of a `serde_json::Map` (sorted)
                out.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(Headers(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// One page of a WAT file.
#[derive(Debug, Clone, PartialEq)]
pub struct WatPage {
    pub page_url: String,
    pub warc_date: Option<String>,
    pub extraction: Extraction,
}

/// Parses one WAT JSON record. `Ok(None)`: a record that is not an HTML response (request,
/// warcinfo, metadata). `Err`: JSON that does not parse or has no envelope.
pub fn parse_wat(json: &[u8]) -> Result<Option<WatPage>, String> {
    let wat: Wat<'_> = serde_json::from_slice(json).map_err(|e| format!("WAT JSON: {e}"))?;
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
    let warc_date = env.warc.date.map(Cow::into_owned);
    let out = |ex: Extraction| {
        Ok(Some(WatPage {
            page_url: page.to_string(),
            warc_date,
            extraction: ex,
        }))
    };
    if let Some(h) = &resp.headers {
        for (_, vals) in &h.0 {
            if let Some(d) = vals.iter().find_map(|v| opt_out_directive(v)) {
                ex.opted_out = Some(d);
                return out(ex);
            }
        }
    }
    let Some(html) = resp.html else {
        return out(ex);
    };
    let head = html.head.unwrap_or_default();
    for m in &head.metas {
        let name = m.name.as_deref().unwrap_or("");
        if (name.eq_ignore_ascii_case("robots") || name.eq_ignore_ascii_case("openwit"))
            && let Some(d) = opt_out_directive(m.content.as_deref().unwrap_or(""))
        {
            ex.opted_out = Some(d);
            return out(ex);
        }
    }
    ex.title = head.title.and_then(|t| t.0).and_then(|t| clean_text(&t));
    let base = head
        .base
        .and_then(|b| b.0)
        .and_then(|b| page.join(b.trim()).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .unwrap_or_else(|| page.clone());
    let seen_hasher = std::collections::hash_map::RandomState::new();
    let mut seen = std::collections::HashSet::new();
    for l in &html.links {
        if l.path.as_deref() != Some("IMG@/src") {
            continue;
        }
        let Some(raw) = l.url.as_deref() else {
            ex.drop_image(unresolved_image(
                "no_image_url",
                None,
                listed_caption(l.alt.as_deref(), l.title.as_deref()),
            ));
            continue;
        };
        let Some(url) = resolve_listed(
            &base,
            raw,
            || listed_caption(l.alt.as_deref(), l.title.as_deref()),
            &mut ex,
        ) else {
            continue;
        };
        let alt = l.alt.as_deref().and_then(clean_text);
        let title = l.title.as_deref().and_then(clean_text);
        // duplicates by hash of (url, alt, title), checked against the kept images on a hit
        let h = seen_hasher.hash_one((&url, &alt, &title));
        if !seen.insert(h)
            && ex
                .images
                .iter()
                .any(|i| i.url == url && i.alt == alt && i.title == title)
        {
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
            r#","X-Robots-Tag":"openwit: noai""#,
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
        // another agent's rules, and the issue's header (a date, not an agent)
        for (h, want) in [
            ("otherbot: noai", None),
            (
                "noindex, unavailable_after: 25 Jun 2010 15:00:00 PST",
                Some("noindex"),
            ),
            (
                "unavailable_after: 25 Jun 2010 15:00:00 PST",
                Some("unavailable_after"),
            ),
        ] {
            let j = wat(
                r#"{"path":"IMG@/src","url":"a.jpg","alt":"a"}"#,
                "",
                &format!(r#","X-Robots-Tag":"{h}""#),
            );
            let ex = parse_wat(&j).unwrap().unwrap().extraction;
            assert_eq!(ex.opted_out.as_deref(), want, "{h}");
            assert_eq!(ex.images.len(), usize::from(want.is_none()), "{h}");
        }
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

    /// `parse_wat` against the previous `Value`-based parser: the same page, or both errors.
    fn same_as_reference(j: &[u8]) {
        let new = parse_wat(j);
        let old = crate::wat_reference::parse_wat_value(j);
        match (&new, &old) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{}", String::from_utf8_lossy(j)),
            (Err(_), Err(_)) => {}
            _ => panic!(
                "new {new:?} vs old {old:?} on {}",
                String::from_utf8_lossy(j)
            ),
        }
    }

    #[test]
    fn same_results_as_the_value_parser_on_odd_json() {
        let env = |resp: &str| {
            format!(
                r#"{{"Envelope":{{"WARC-Header-Metadata":{{"WARC-Type":"response","WARC-Target-URI":"http://e.com/d/"}},
                "Payload-Metadata":{{"HTTP-Response-Metadata":{resp}}}}}}}"#
            )
            .into_bytes()
        };
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let shallow = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        let cases: Vec<Vec<u8>> = vec![
            // repeated keys: the last wins, whatever its type
            env(r#"{"HTML-Metadata":{"Links":[{"path":"IMG@/src","url":"a.jpg","url":"b.jpg","alt":"x","alt":5}]}}"#),
            env(r#"{"HTML-Metadata":{"Links":[{"path":"IMG@/src","path":"A@/href","url":"a.jpg"}]}}"#),
            // escaped keys and values
            env(r#"{"HTML-Metadata":{"Links":[{"p\u0061th":"IMG\u0040/src","url":"\u00e9t\u00e9.jpg","alt":"caf\u00e9 \"x\""}]}}"#),
            // values of other types, nested values in unused fields
            env(r#"{"HTML-Metadata":{"Head":{"Title":{"x":1},"Base":7,"Metas":[1,"x",null,[{"name":"robots"}],{"name":"robots","content":["noai"]}]},
                "Links":[{"path":"IMG@/src","url":"a.jpg","extra":{"a":[1,2.5e3,-0,true,null,"s"]}},{"path":["IMG@/src"],"url":"b.jpg"}]}}"#),
            env(&format!(r#"{{"HTML-Metadata":{{"Links":[{{"path":"IMG@/src","url":"a.jpg","x":{deep}}}]}}}}"#)),
            env(&format!(r#"{{"HTML-Metadata":{{"Links":[{{"path":"IMG@/src","url":"a.jpg","x":{shallow}}}]}}}}"#)),
            env(&format!(r#"{{"HTML-Metadata":{{"Head":{{"Title":{deep}}},"Links":[]}}}}"#)),
            env(r#"{"HTML-Metadata":{"Links":[{"path":"IMG@/src","url":"a.jpg","n":1e999}]}}"#),
            env(r#"{"HTML-Metadata":{"Links":null}}"#),
            env(r#"{"HTML-Metadata":{"Links":{}}}"#),
            env(r#"{"HTML-Metadata":{"Head":null,"Links":[{"path":"IMG@/src","url":" "},{"path":"IMG@/src","url":null}]}}"#),
            // headers: case variants, repeated keys, arrays, other types
            env(r#"{"Headers":{"x-robots-tag":"all","X-Robots-Tag":["a: noindex","b: noai"]},"HTML-Metadata":{"Links":[]}}"#),
            env(r#"{"Headers":{"X-Robots-Tag":"noai","X-Robots-Tag":"all"},"HTML-Metadata":{"Links":[{"path":"IMG@/src","url":"a.jpg","alt":"a"}]}}"#),
            env(r#"{"Headers":{"X-ROBOTS-TAG":{"v":"noai"},"x-robots-tag":[1,"noimageai",null]},"HTML-Metadata":{"Links":[]}}"#),
            env(r#"{"Headers":[],"HTML-Metadata":{"Links":[]}}"#),
            env(r#"{"Headers":null}"#),
            env(r#"null"#),
            // duplicates of (url, alt, title)
            env(r#"{"HTML-Metadata":{"Links":[{"path":"IMG@/src","url":"a.jpg","alt":"a"},{"path":"IMG@/src","url":"a.jpg#f","alt":" a "},
                {"path":"IMG@/src","url":"a.jpg","alt":"a","title":"t"},{"path":"IMG@/src","url":"./a.jpg","alt":"a","title":"t"}]}}"#),
            br#"{"Envelope":{"WARC-Header-Metadata":{"WARC-Type":"response","WARC-Type":"request","WARC-Target-URI":"http://e.com/"}}}"#.to_vec(),
            br#"{"Envelope":{"WARC-Header-Metadata":{"WARC-Type":5,"WARC-Target-URI":"http://e.com/"}}}"#.to_vec(),
            br#"{"Envelope":{},"Envelope":{}}"#.to_vec(),
            br#"[1,2]"#.to_vec(),
            b"{\"Envelope\":{\"WARC-Header-Metadata\":{\"WARC-Type\":\"response\",\"WARC-Target-URI\":\"http://e.com/\"},\"x\":\"\xff\"}}".to_vec(),
            {
                let mut v = env(r#"{"HTML-Metadata":{"Links":[{"path":"IMG@/src","url":"a.jpg","q":"~"}]}}"#);
                let at = v.iter().position(|&b| b == b'~').unwrap();
                v[at] = 0xff;
                v
            },
        ];
        for c in &cases {
            same_as_reference(c);
        }
        // and the existing test records
        same_as_reference(&wat(
            r#"{"path":"IMG@/src","url":"img/cat.jpg","alt":" A cat "},{"path":"IMG@/src","url":"img/cat.jpg","alt":" A cat "}"#,
            r#""Base":"https://cdn.e.org/base/","#,
            r#","X-Robots-Tag":"all""#,
        ));
    }

    #[test]
    fn same_results_as_the_value_parser_on_generated_wat() {
        let mut file = Vec::new();
        crate::fixtures::write_wat(&mut file, 5, 300, 12).unwrap();
        let mut n = 0;
        for ev in crate::warc::WarcReader::new(&file[..], true) {
            if let crate::warc::Event::Record(r) = ev {
                same_as_reference(&r.body);
                n += 1;
            }
        }
        assert!(n > 300);
    }
}
