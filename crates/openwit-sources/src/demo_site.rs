//! A small generated website for the demo and the tests, and a tiny static file server for it.
//!
//! [`generate`] writes a few dozen HTML pages about everyday things (animals, colours, vehicles,
//! food) with `<img>` tags and English alt texts, some non-English and junk captions, one page
//! that opts out (`noai`), a robots.txt that disallows `/private/`, a sitemap, and the images
//! themselves as real JPEG and PNG files made with the `image` crate. [`serve`] serves a folder
//! on 127.0.0.1 (a random port) until dropped; the crawl stage's `demo_site` option uses both
//! and reaches the server under the stable name [`DEMO_HOST`], so URLs do not depend on the port.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{IoAt, SourcesError};
use crate::fixtures::THINGS;
use openwit_core::escape::html as esc;

/// The host name the demo site is crawled under.
pub const DEMO_HOST: &str = "demo.openwit.test";

const FOREIGN: [&str; 6] = [
    "Eine schwarze Katze schläft auf dem Sofa",
    "Un chien qui court sur la plage",
    "Una bicicleta azul junto a la pared",
    "Ein roter Apfel auf dem Tisch",
    "Une tasse de café chaud",
    "Un autobús amarillo en la ciudad",
];
const JUNK: [&str; 6] = [
    "IMG_4032.JPG",
    "click here",
    "logo",
    "image",
    "DSC00012",
    "banner_ad_728x90",
];

fn colour_of(thing: &str) -> [u8; 3] {
    let h = thing
        .bytes()
        .fold(7u32, |a, b| a.wrapping_mul(31).wrapping_add(b as u32));
    [
        (h & 0xff) as u8,
        ((h >> 8) & 0xff) as u8,
        ((h >> 16) & 0xff) as u8,
    ]
}

fn write_image(path: &Path, thing: &str, png: bool) -> Result<(), SourcesError> {
    let [r, g, b] = colour_of(thing);
    let img = image::RgbImage::from_fn(96, 72, |x, y| {
        let stripe = ((x / 8 + y / 8) % 2) as u8;
        image::Rgb([r ^ (stripe * 40), g ^ (stripe * 40), b])
    });
    let fmt = if png {
        image::ImageFormat::Png
    } else {
        image::ImageFormat::Jpeg
    };
    img.save_with_format(path, fmt)
        .map_err(|e| SourcesError::Input(format!("{}: {e}", path.display())))
}

/// Writes the demo site into `dir` (deterministic for a page count). Returns the number of pages.
pub fn generate(dir: &Path, pages: usize) -> Result<usize, SourcesError> {
    let pages = pages.clamp(2, 10_000);
    std::fs::create_dir_all(dir.join("img")).at(dir.display())?;
    for (i, t) in THINGS.iter().enumerate() {
        let png = i % 4 == 3;
        let name = format!(
            "img/{}.{}",
            t.replace(' ', "-"),
            if png { "png" } else { "jpg" }
        );
        write_image(&dir.join(&name), t, png)?;
    }
    let img_name = |t: &str, i: usize| {
        format!(
            "/img/{}.{}",
            t.replace(' ', "-"),
            if i % 4 == 3 { "png" } else { "jpg" }
        )
    };
    let mut rng = ChaCha8Rng::seed_from_u64(pages as u64);
    let mut index = String::from(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Everyday things</title></head><body><h1>Everyday things</h1><ul>\n",
    );
    for p in 0..pages {
        index.push_str(&format!(
            "<li><a href=\"/pages/p{p}.html\">Page {p}</a></li>\n"
        ));
        let mut html = format!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Things, page {p}</title>{}</head><body>\n<h1>Page {p}</h1>\n",
            if p == 3 {
                "<meta name=\"robots\" content=\"noai, noimageai\">"
            } else {
                ""
            }
        );
        for k in 0..4 {
            let ti = rng.random_range(0..THINGS.len());
            let t = THINGS[ti];
            let src = img_name(t, ti);
            let cap = match (p + k) % 11 {
                5 => FOREIGN[rng.random_range(0..FOREIGN.len())].to_string(),
                9 => JUNK[rng.random_range(0..JUNK.len())].to_string(),
                _ => format!(
                    "{} {t} {}",
                    ["a photo of a", "a small", "a big", "my"][rng.random_range(0..4)],
                    [
                        "in the garden",
                        "on a table",
                        "at the beach",
                        "on the street"
                    ][k % 4]
                ),
            };
            match k {
                0 => html.push_str(&format!("<p>About the {t}.</p><img src=\"{src}\" alt=\"{cap}\" width=\"96\" height=\"72\">\n")),
                1 => html.push_str(&format!("<figure><img src=\"..{src}\"><figcaption>{cap}</figcaption></figure>\n")),
                2 => html.push_str(&format!("<img src=\"data:image/gif;base64,R0lGODlhAQABAAAAACw=\" data-src=\"{src}\" alt=\"{cap}\">\n")),
                _ => html.push_str(&format!("<img src=\"{src}\" title=\"{cap}\"><img src=\"/px.gif\" width=\"1\" height=\"1\">\n")),
            }
        }
        html.push_str(&format!(
            "<p><a href=\"/pages/p{}.html\">next</a> <a href=\"/private/secret.html\">private</a> <a href=\"/\">home</a></p></body></html>\n",
            (p + 1) % pages
        ));
        std::fs::create_dir_all(dir.join("pages")).at(dir.display())?;
        std::fs::write(dir.join(format!("pages/p{p}.html")), html).at(dir.display())?;
    }
    index.push_str("</ul></body></html>\n");
    std::fs::write(dir.join("index.html"), index).at(dir.display())?;
    let page_paths: Vec<String> = (0..pages).map(|p| format!("/pages/p{p}.html")).collect();
    write_site_files(dir, &page_paths, "/img/cat.jpg")?;
    std::fs::write(dir.join(MARKER), format!("{pages}\n")).at(dir.display())?;
    Ok(pages)
}

/// The file whose presence says the site is complete (written last).
pub const MARKER: &str = ".openwit-demo-site";

/// What [`MARKER`] says of a clip-art site: its world, the version of its pages (raise it when
/// what [`generate_clipart`] writes changes, so that an older site is written again) and its
/// settings.
pub fn clipart_marker(per_class: usize, held_out_percent: u32, per_page: usize) -> String {
    format!("openclipart 2 per_class={per_class} held_out={held_out_percent} per_page={per_page}\n")
}

/// What every demo world has besides its pages: a members-only page that robots.txt disallows,
/// the robots.txt, and a sitemap of the pages.
fn write_site_files(dir: &Path, pages: &[String], secret_img: &str) -> Result<(), SourcesError> {
    std::fs::create_dir_all(dir.join("private")).at(dir.display())?;
    std::fs::write(
        dir.join("private/secret.html"),
        format!("<html><body><img src=\"{secret_img}\" alt=\"a secret cat\"></body></html>"),
    )
    .at(dir.display())?;
    std::fs::write(
        dir.join("robots.txt"),
        format!("User-agent: *\nDisallow: /private/\n\nSitemap: http://{DEMO_HOST}/sitemap.xml\n"),
    )
    .at(dir.display())?;
    let mut sm = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n",
    );
    for p in pages {
        sm.push_str(&format!("<url><loc>http://{DEMO_HOST}{p}</loc></url>\n"));
    }
    sm.push_str("</urlset>\n");
    std::fs::write(dir.join("sitemap.xml"), sm).at(dir.display())?;
    Ok(())
}

/// What [`generate_clipart`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipartSite {
    pub pages: usize,
    /// Drawings served on the pages.
    pub served: usize,
    /// Drawings written to the held-out folder only.
    pub held_out: usize,
    /// The held-out folder: one folder per class (an image folder), plus `captions.tsv`.
    pub held_out_dir: PathBuf,
    /// The selection's counts of drawings left out.
    pub selection: crate::clipart::Selection,
}

/// The held-out folder of a clip-art demo site in `dir`: beside it, `DIR-heldout`, so that the
/// site's server cannot serve it.
pub fn held_out_dir(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "demo-site".into());
    dir.with_file_name(format!("{name}-heldout"))
}

/// `text` with its first letter upper-cased (a topic as a page heading shows it).
fn upper_first(text: &str) -> String {
    let mut c = text.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Writes the demo site of real pictures into `dir`: the Open Clip Art drawings of
/// [`crate::clipart::select`] under `root` (see [`crate::clipart::root_of`]), at most
/// `per_class` per class, `held_out_percent` of them held out. The served drawings are copied
/// as they are (`img/CLASS/FILE.png`: `img/` is also an image folder of the training part, the
/// linear probe's training set) and shown on pages of `per_page`, each in one of the forms real
/// pages use (an `alt` text, a `<figure>` with its `<figcaption>`, a lazy-loaded `data-src`, a
/// `title`), with the author's title or description and keywords (as tags) as captions, most
/// of them with the drawing's topic as clip-art sites write it ("Fruit clip art: ...", "... -
/// fruit clip art"; the topic is the package's folder, named as in [`crate::clipart::CLASSES`]),
/// next to navigation, tags, a tracking pixel, one page that opts out of AI use, and a
/// members-only page that robots.txt disallows. The held-out drawings go to [`held_out_dir`]:
/// `CLASS/FILE.png` (an image folder, which `openwit eval`'s `folder` reads) and `captions.tsv`
/// (file, class, caption: the same folder is a retrieval set). `split.tsv` in `dir` records
/// every drawing's class and part.
pub fn generate_clipart(
    dir: &Path,
    root: &Path,
    per_class: usize,
    held_out_percent: u32,
    per_page: usize,
) -> Result<ClipartSite, SourcesError> {
    let sel = crate::clipart::select(root, per_class, held_out_percent)?;
    if sel.drawings.is_empty() {
        return Err(SourcesError::Input(format!(
            "{}: none of the demo's clip-art folders has a drawing with its PNG",
            root.display()
        )));
    }
    let held = held_out_dir(dir);
    for d in [dir, held.as_path()] {
        if d.exists() {
            std::fs::remove_dir_all(d).at(d.display())?;
        }
        std::fs::create_dir_all(d).at(d.display())?;
    }
    // What a clip-art site shows with a drawing: its title (or, without one, its description),
    // and the author's keywords as tags.
    let text = |d: &crate::clipart::Drawing, prefer_description: bool| {
        let (a, b) = (d.meta.title.clone(), d.meta.description.clone());
        let t = if prefer_description { b.or(a) } else { a.or(b) };
        t.unwrap_or_default()
    };
    let tagged = |t: String, d: &crate::clipart::Drawing| {
        if d.meta.keywords.is_empty() {
            t
        } else {
            format!("{t} ({})", d.meta.keywords.join(", "))
        }
    };
    let caption = |d: &crate::clipart::Drawing| tagged(text(d, true), d);
    let mut split = String::from("name\tclass\tpart\n");
    let mut held_tsv = String::from("file\tclass\tcaption\n");
    let mut served = Vec::new();
    for d in &sel.drawings {
        split.push_str(&format!(
            "{}\t{}\t{}\n",
            d.name,
            d.class,
            if d.held_out { "held_out" } else { "train" }
        ));
        if d.held_out {
            let rel = d.rel_png();
            let to = held.join(&rel);
            std::fs::create_dir_all(held.join(d.class_dir())).at(held.display())?;
            std::fs::copy(&d.png, &to).at(to.display())?;
            held_tsv.push_str(&format!(
                "{rel}\t{}\t{}\n",
                d.class,
                caption(d).replace(['\t', '\n'], " ")
            ));
        } else {
            let to = dir.join("img").join(d.rel_png());
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).at(parent.display())?;
            }
            std::fs::copy(&d.png, &to).at(to.display())?;
            served.push(d);
        }
    }
    std::fs::write(held.join("captions.tsv"), held_tsv).at(held.display())?;
    std::fs::write(dir.join("split.tsv"), split).at(dir.display())?;
    // The served drawings in a fixed shuffled order, so that a page mixes classes.
    let mut rng = ChaCha8Rng::seed_from_u64(0x0c1a);
    for i in (1..served.len()).rev() {
        served.swap(i, rng.random_range(0..=i));
    }
    let per_page = per_page.clamp(1, 1000);
    let pages: Vec<&[&crate::clipart::Drawing]> = served.chunks(per_page).collect();
    std::fs::create_dir_all(dir.join("pages")).at(dir.display())?;
    let mut index = String::from(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Free clip art</title></head><body><h1>Free clip art</h1><p>Public-domain drawings from the Open Clip Art Library.</p><ul>\n",
    );
    let mut page_paths = Vec::new();
    for (p, items) in pages.iter().enumerate() {
        let path = format!("/pages/c{p}.html");
        index.push_str(&format!("<li><a href=\"{path}\">Page {p}</a></li>\n"));
        let mut html = format!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Clip art, page {p}</title>{}</head><body>\n<nav><a href=\"/\">Home</a> | <a href=\"/private/secret.html\">Members</a> | <a href=\"/pages/c{}.html\">Next</a></nav>\n<h1>Clip art, page {p}</h1>\n",
            if p == 3 {
                "<meta name=\"robots\" content=\"noai, noimageai\">"
            } else {
                ""
            },
            (p + 1) % pages.len()
        );
        for (k, d) in items.iter().enumerate() {
            let src = format!("/img/{}", esc(&d.rel_png()));
            let title = esc(d.meta.title.as_deref().unwrap_or(""));
            let by = d
                .meta
                .creator
                .as_deref()
                .map(|c| format!(" <small>by {}</small>", esc(c)))
                .unwrap_or_default();
            match (p + k) % 4 {
                0 => html.push_str(&format!(
                    "<figure><img src=\"{src}\" alt=\"{title}\"><figcaption>{} clip art: {}{by}</figcaption></figure>\n",
                    esc(&upper_first(d.class)),
                    esc(&caption(d))
                )),
                1 => html.push_str(&format!(
                    "<div class=\"item\"><img src=\"{src}\" alt=\"{} - {} clip art\"><p class=\"tags\">Tags: {}</p>{by}</div>\n",
                    esc(&tagged(text(d, false), d)),
                    esc(d.class),
                    esc(&d.meta.keywords.join(", "))
                )),
                2 => html.push_str(&format!(
                    "<img src=\"data:image/gif;base64,R0lGODlhAQABAAAAACw=\" data-src=\"{src}\" alt=\"{}\">\n",
                    esc(&caption(d))
                )),
                _ => html.push_str(&format!(
                    "<a href=\"{src}\"><img src=\"{src}\" title=\"{} clip art: {}\"></a><img src=\"/px.gif\" width=\"1\" height=\"1\">\n",
                    esc(&upper_first(d.class)),
                    esc(&text(d, false))
                )),
            }
        }
        html.push_str(
            "<footer><p>All drawings are in the public domain.</p></footer></body></html>\n",
        );
        std::fs::write(dir.join(format!("pages/c{p}.html")), html).at(dir.display())?;
        page_paths.push(path);
    }
    index.push_str("</ul></body></html>\n");
    std::fs::write(dir.join("index.html"), index).at(dir.display())?;
    let secret = served
        .first()
        .map(|d| format!("/img/{}", d.rel_png()))
        .unwrap_or_default();
    write_site_files(dir, &page_paths, &secret)?;
    std::fs::write(
        dir.join(MARKER),
        clipart_marker(per_class, held_out_percent, per_page),
    )
    .at(dir.display())?;
    tracing::info!(
        pages = pages.len(),
        served = served.len(),
        held_out = sel.drawings.len() - served.len(),
        ambiguous = sel.ambiguous,
        unusable = sel.unusable,
        over_cap = sel.over_cap,
        "wrote the clip-art demo site"
    );
    Ok(ClipartSite {
        pages: pages.len(),
        served: served.len(),
        held_out: sel.drawings.len() - served.len(),
        held_out_dir: held,
        selection: sel,
    })
}

/// A running static file server; stops when dropped.
pub struct DemoServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn content_type(p: &Path) -> &'static str {
    match p.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "xml" => "application/xml",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Serves `dir` on 127.0.0.1 (random port) on `rt` until the returned server is dropped.
/// Only GET/HEAD, no directory listing, `/` serves `index.html`, paths with `..` are refused.
pub fn serve(rt: &tokio::runtime::Runtime, dir: &Path) -> Result<DemoServer, SourcesError> {
    let dir: PathBuf = dir.to_path_buf();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .at("127.0.0.1:0")?;
    let addr = listener.local_addr().at("127.0.0.1:0")?;
    let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
    rt.spawn(async move {
        loop {
            tokio::select! {
                _ = &mut rx => return,
                acc = listener.accept() => {
                    let Ok((sock, _)) = acc else { continue };
                    let dir = dir.clone();
                    tokio::spawn(async move { let _ = handle(sock, &dir).await; });
                }
            }
        }
    });
    Ok(DemoServer {
        addr,
        stop: Some(tx),
    })
}

async fn handle(mut sock: tokio::net::TcpStream, dir: &Path) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::with_capacity(2048);
    loop {
        let mut chunk = [0u8; 2048];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if memchr::memmem::find(&buf, b"\r\n\r\n").is_some() || buf.len() > 16 << 10 {
            break;
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let (status, ctype, body): (&str, &str, Vec<u8>) = match req.parse(&buf) {
        Ok(httparse::Status::Complete(_)) if matches!(req.method, Some("GET" | "HEAD")) => {
            let path = req
                .path
                .unwrap_or("/")
                .split(['?', '#'])
                .next()
                .unwrap_or("/");
            let rel = path.trim_start_matches('/');
            let rel = if rel.is_empty() { "index.html" } else { rel };
            if rel.split('/').any(|c| c == ".." || c.starts_with('.')) {
                ("404 Not Found", "text/plain", b"not found".to_vec())
            } else {
                let p = dir.join(rel);
                match tokio::fs::read(&p).await {
                    Ok(b) => ("200 OK", content_type(&p), b),
                    Err(_) => ("404 Not Found", "text/plain", b"not found".to_vec()),
                }
            }
        }
        _ => ("400 Bad Request", "text/plain", b"bad request".to_vec()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await?;
    if req.method != Some("HEAD") {
        sock.write_all(&body).await?;
    }
    sock.flush().await?;
    Ok(())
}
