//! Generators of real-format fixtures for tests, benchmarks and the fuzzers' seed corpora:
//! HTML pages with images, WARC files (response + request records, one gzip member each) and
//! WAT files (metadata records with the Common Crawl JSON layout). Deterministic per seed.

use std::io::Write;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Everyday things the generated captions talk about.
pub const THINGS: [&str; 40] = [
    "cat",
    "dog",
    "horse",
    "cow",
    "rabbit",
    "parrot",
    "goldfish",
    "sheep",
    "duck",
    "tiger",
    "red car",
    "blue bicycle",
    "yellow bus",
    "green tractor",
    "white boat",
    "old train",
    "motorcycle",
    "fire truck",
    "sailboat",
    "airplane",
    "banana",
    "apple pie",
    "bowl of soup",
    "pizza",
    "fresh bread",
    "strawberries",
    "cup of coffee",
    "chocolate cake",
    "salad",
    "pancakes",
    "orange",
    "purple flower",
    "pink umbrella",
    "brown teddy bear",
    "black guitar",
    "wooden chair",
    "red kite",
    "silver spoon",
    "green lamp",
    "grey mountain",
];
const ADJ: [&str; 8] = [
    "a photo of a",
    "a small",
    "a big",
    "my",
    "the",
    "a close-up of a",
    "a happy",
    "an old",
];
const PLACES: [&str; 8] = [
    "in the garden",
    "on a table",
    "at the beach",
    "in the snow",
    "on the street",
    "at night",
    "in a field",
    "near the lake",
];

/// A caption about an everyday thing.
pub fn caption(rng: &mut impl Rng) -> String {
    format!(
        "{} {} {}",
        ADJ[rng.random_range(0..ADJ.len())],
        THINGS[rng.random_range(0..THINGS.len())],
        PLACES[rng.random_range(0..PLACES.len())]
    )
}

/// One HTML page with `n_img` images (alt, title, figure/figcaption, srcset, lazy-load, a data:
/// URI and a tracking pixel mixed in) and some text.
pub fn html_page(rng: &mut impl Rng, page_no: usize, n_img: usize) -> String {
    let mut s = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Page {page_no} about everyday things</title>\
         <link rel=\"stylesheet\" href=\"/style.css\"></head><body><nav><a href=\"/\">home</a> <a href=\"/p{}.html\">next</a></nav>\n",
        page_no + 1
    );
    for i in 0..n_img {
        let cap = caption(rng);
        let id = page_no * 100 + i;
        match rng.random_range(0..6) {
            0 => s.push_str(&format!("<p>Some text about {cap}. Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p><img src=\"/img/{id}.jpg\" alt=\"{cap}\" width=\"640\" height=\"480\">\n")),
            1 => s.push_str(&format!("<figure><img src=\"img/{id}.jpg\"><figcaption>{cap}</figcaption></figure>\n")),
            2 => s.push_str(&format!("<img src=\"/img/{id}-s.jpg\" srcset=\"/img/{id}-s.jpg 320w, /img/{id}-l.jpg 1280w\" alt=\"{cap}\" title=\"{}\">\n", caption(rng))),
            3 => s.push_str(&format!("<img src=\"data:image/gif;base64,R0lGODlhAQABAAAAACw=\" data-src=\"https://cdn.example.com/{id}.png\" alt=\"{cap}\">\n")),
            4 => s.push_str(&format!("<div class=\"card\"><span>{cap}</span><img src=\"//static.example.net/i/{id}.webp\" alt=\"{cap}\" loading=\"lazy\"></div>\n")),
            _ => s.push_str(&format!("<img src=\"/px/{id}.gif\" width=\"1\" height=\"1\" alt=\"\"><img src=\"/img/{id}.jpg\">\n")),
        }
    }
    s.push_str("<footer><p>Copyright. All rights reserved.</p><script>var x = '<img src=nope>';</script></footer></body></html>\n");
    s
}

fn gz_member(out: &mut impl Write, data: &[u8]) -> std::io::Result<()> {
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 3),
        flate2::Compression::new(6),
    );
    e.write_all(data)?;
    out.write_all(&e.finish()?)
}

fn record(ty: &str, uri: &str, date: &str, content_type: &str, block: &[u8], n: usize) -> Vec<u8> {
    let mut v = format!(
        "WARC/1.0\r\nWARC-Type: {ty}\r\nWARC-Date: {date}\r\nWARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-{n:012}>\r\n\
         WARC-Target-URI: {uri}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        block.len()
    )
    .into_bytes();
    v.extend_from_slice(block);
    v.extend_from_slice(b"\r\n\r\n");
    v
}

/// Page URL of generated page `i`.
pub fn page_url(i: usize) -> String {
    format!("https://site{}.example.org/articles/p{i}.html", i % 50)
}

/// Writes the `warcinfo` record that opens a generated WARC or WAT file (record number 0).
fn warcinfo(out: &mut impl Write) -> std::io::Result<()> {
    let info = b"software: openwit-gen\r\nformat: WARC File Format 1.0\r\n";
    gz_member(
        out,
        &record(
            "warcinfo",
            "",
            "2024-03-01T00:00:00Z",
            "application/warc-fields",
            info,
            0,
        ),
    )
}

/// The capture date of generated page `i`: one second apart from midnight, 2024-03-01.
fn page_date(i: usize) -> String {
    format!(
        "2024-03-01T{:02}:{:02}:{:02}Z",
        (i / 3600) % 24,
        (i / 60) % 60,
        i % 60
    )
}

/// Writes a WARC file of `pages` pages (warcinfo, then request + response per page, every 7th
/// page opting out via `X-Robots-Tag`), one gzip member per record. Callers check what the
/// stages make of it themselves.
pub fn write_warc(
    out: &mut impl Write,
    seed: u64,
    pages: usize,
    imgs_per_page: usize,
) -> std::io::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    warcinfo(out)?;
    for i in 0..pages {
        let url = page_url(i);
        let date = page_date(i);
        let req = format!(
            "GET /articles/p{i}.html HTTP/1.1\r\nHost: site{}.example.org\r\nUser-Agent: gen\r\n\r\n",
            i % 50
        );
        gz_member(
            out,
            &record(
                "request",
                &url,
                &date,
                "application/http; msgtype=request",
                req.as_bytes(),
                2 * i + 1,
            ),
        )?;
        let body = html_page(&mut rng, i, imgs_per_page);
        let robots = if i % 7 == 6 {
            "X-Robots-Tag: noai\r\n"
        } else {
            ""
        };
        let mut http = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\n{robots}Content-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        http.extend_from_slice(body.as_bytes());
        gz_member(
            out,
            &record(
                "response",
                &url,
                &date,
                "application/http; msgtype=response",
                &http,
                2 * i + 2,
            ),
        )?;
    }
    Ok(())
}

/// Writes a WAT file of `pages` pages in Common Crawl's JSON layout, one gzip member per record.
/// Image links are relative or absolute, some with `alt`; every 7th page opts out via a robots meta.
pub fn write_wat(
    out: &mut impl Write,
    seed: u64,
    pages: usize,
    imgs_per_page: usize,
) -> std::io::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    warcinfo(out)?;
    for i in 0..pages {
        let url = page_url(i);
        let date = page_date(i);
        let mut links = vec![
            serde_json::json!({"path": "A@/href", "url": "/", "text": "home"}),
            serde_json::json!({"path": "LINK@/href", "url": "/style.css", "rel": "stylesheet"}),
        ];
        for k in 0..imgs_per_page {
            let id = i * 100 + k;
            let u = match k % 3 {
                0 => format!("/img/{id}.jpg"),
                1 => format!("img/{id}.png"),
                _ => format!("https://cdn.example.com/{id}.webp"),
            };
            if k % 5 == 4 {
                links.push(serde_json::json!({"path": "IMG@/src", "url": u}));
            } else {
                links.push(
                    serde_json::json!({"path": "IMG@/src", "url": u, "alt": caption(&mut rng)}),
                );
            }
        }
        let metas = if i % 7 == 6 {
            serde_json::json!([{"name": "robots", "content": "noimageai"}])
        } else {
            serde_json::json!([{"name": "viewport", "content": "width=device-width"}])
        };
        let j = serde_json::json!({
            "Container": {"Filename": "gen.warc.gz", "Compressed": true, "Offset": (i * 1000).to_string()},
            "Envelope": {
                "Format": "WARC",
                "WARC-Header-Length": "450",
                "Block-Digest": "sha1:AAAA",
                "Actual-Content-Length": "12345",
                "WARC-Header-Metadata": {"WARC-Type": "response", "WARC-Date": date, "WARC-Target-URI": url,
                    "Content-Type": "application/http; msgtype=response"},
                "Payload-Metadata": {
                    "Actual-Content-Type": "application/http; msgtype=response",
                    "HTTP-Response-Metadata": {
                        "Response-Message": {"Version": "HTTP/1.1", "Status": "200", "Reason": "OK"},
                        "Headers": {"Content-Type": "text/html; charset=UTF-8", "Server": "gen"},
                        "Headers-Length": "200",
                        "Entity-Metadata": {"Content-Type": "text/html", "Trailing-Slop-Length": "0"},
                        "HTML-Metadata": {
                            "Head": {"Title": format!("Page {i}"), "Metas": metas, "Link": []},
                            "Links": links
                        }
                    }
                }
            }
        });
        let body = serde_json::to_vec(&j)?;
        gz_member(
            out,
            &record("metadata", &url, &date, "application/json", &body, i + 1),
        )?;
    }
    Ok(())
}
