//! The HTML extractor on arbitrary bytes (decoded as the crawler does), with links, and the
//! opt-out header parser on the first line; it must agree with the previous selector-based
//! extractor (`extract_reference`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(0);
    let header = String::from_utf8_lossy(&data[..split]);
    let body = &data[split..];
    let text = openwit_sources::html::decode_html(body, Some("text/html"));
    let page = url::Url::parse("https://www.example.org/a/b/page.html?q=1").unwrap();
    let (ex, links) =
        openwit_sources::extract::extract_with_links(&text, &page, &[header.as_ref()]);
    let (old_ex, old_links) =
        openwit_sources::extract_reference::extract_with_links(&text, &page, &[header.as_ref()]);
    assert_eq!(ex, old_ex);
    assert_eq!(links, old_links);
    for img in &ex.images {
        let u = url::Url::parse(&img.url).expect("extracted URLs are absolute");
        assert!(matches!(u.scheme(), "http" | "https"));
    }
    if ex.opted_out.is_some() {
        assert!(ex.images.is_empty());
    }
    for l in links {
        let _ = openwit_sources::crawl::urlnorm::normalize(&page, l.as_str());
    }
    let mut drops = Default::default();
    let mut rows = Vec::new();
    let info = openwit_sources::extract::PageInfo {
        page_url: page.as_str(),
        source_id: "fuzz",
        fetch_time: None,
    };
    openwit_sources::extract::to_candidates(&ex, info, &mut drops, &mut rows);
    let _ = openwit_sources::extract::largest_srcset(&text);
});
