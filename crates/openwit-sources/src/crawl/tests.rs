use super::*;
use crate::candidate::read_candidates;
use openwit_testkit::server::{Fault, Response, TestServer};

const PAGES: usize = 300;

fn page_html(i: usize) -> String {
    let mut s = format!("<html lang=\"en\"><head><title>p{i}</title>");
    if i % 10 == 7 {
        s.push_str("<meta name=\"robots\" content=\"noimageai\">");
    }
    s.push_str("</head><body>");
    for k in [2 * i + 1, 2 * i + 2] {
        if k < PAGES {
            s.push_str(&format!(
                "<a href=\"/p/{k}.html#frag\">next</a> <a href=\"/p/{k}.html\">same</a>"
            ));
        }
    }
    if i == 0 {
        s.push_str("<a href=\"/private/x.html\">private</a><a href=\"/moved\">moved</a><a href=\"/loop/0\">loop</a>");
        s.push_str(
            "<a href=\"SLOW\">slow</a><a href=\"/big.html\">big</a><a href=\"/photo.jpg\">img</a>",
        );
        s.push_str(
            "<a href=\"http://other.invalid/x\">offsite</a><a href=\"mailto:x@y.z\">mail</a>",
        );
        s.push_str("<a href=\"/gone.html\">gone</a><a href=\"/latin1.html\">latin1</a>");
    }
    for k in 0..3 {
        s.push_str(&format!(
            "<img src=\"/img/{i}-{k}.jpg\" alt=\"a photo of thing {i} number {k}\">"
        ));
    }
    s.push_str("<img src=\"/t.gif\" width=\"1\" height=\"1\"></body></html>");
    s
}

/// The main host (127.0.0.1) and a slow host (127.0.0.2).
fn site() -> TestServer {
    site2().0
}

fn site2() -> (TestServer, TestServer) {
    let slow = TestServer::start_on("127.0.0.2".parse().unwrap());
    slow.route("/robots.txt", Response::status(404));
    slow.route(
        "/slow.html",
        Response::html("<img src=/slow.jpg alt=slow>").fault(Fault::Delay { ms: 3000 }),
    );
    let slow_url = slow.url("/slow.html");
    let srv = TestServer::start();
    srv.route(
        "/robots.txt",
        Response::text("User-agent: *\nDisallow: /private/\n"),
    );
    srv.route("/", Response::html("<a href=\"/p/0.html\">start</a>"));
    srv.handler("/p/", move |r| {
        let i: usize = r
            .path
            .trim_start_matches("/p/")
            .trim_end_matches(".html")
            .parse()
            .unwrap_or(usize::MAX);
        if i >= PAGES {
            return Response::status(404);
        }
        let resp = Response::html(&page_html(i).replace("SLOW", &slow_url));
        if i % 10 == 3 {
            // scoped to us (an `otherbot:` prefix would not be)
            resp.header("X-Robots-Tag", "OpenWIT: noai")
        } else {
            resp
        }
    });
    srv.route(
        "/private/x.html",
        Response::html("<img src=/secret.jpg alt=secret>"),
    );
    srv.route("/moved", Response::redirect(301, "/p/5.html"));
    srv.handler("/loop/", |r| {
        let n: usize = r.path.trim_start_matches("/loop/").parse().unwrap_or(0);
        Response::redirect(302, &format!("/loop/{}", n + 1))
    });
    srv.route(
        "/big.html",
        Response::html(&format!(
            "<img src=/big.jpg alt=\"big page\">{}",
            "x".repeat(200_000)
        )),
    );
    srv.route(
        "/photo.jpg",
        Response::bytes("image/jpeg", vec![0xff, 0xd8, 0xff]),
    );
    srv.route("/gone.html", Response::status(404));
    srv.route(
        "/latin1.html",
        Response::bytes(
            "text/html; charset=iso-8859-1",
            b"<html lang=fr><img src=/c.jpg alt=\"caf\xe9 au lait\"></html>".to_vec(),
        ),
    );
    (srv, slow)
}

fn cfg(seed: String) -> CrawlConfig {
    let mut c = CrawlConfig::with_seeds(vec![seed]);
    c.allow_private_networks = true;
    c.min_delay_ms = 0;
    c.concurrency = 8;
    c.per_host = 1;
    c.max_depth = 20;
    c.timeout_secs = 1;
    c.max_attempts = 1;
    c.max_page_bytes = 100_000;
    c
}

fn run(work: &std::path::Path, c: CrawlConfig) -> (Vec<Candidate>, openwit_core::TaskRecord) {
    let stage = CrawlStage::new(c, work).unwrap();
    let mut ex =
        openwit_exec::LocalExecutor::new(work, Default::default(), &openwit_core::NoProgress)
            .unwrap();
    ex.run_stage(&stage).unwrap();
    let rec = ex
        .state()
        .tasks("crawl")
        .unwrap()
        .into_iter()
        .find(|t| t.task == "crawl")
        .unwrap();
    (
        read_candidates(&work.join("crawl/candidates.parquet")).unwrap(),
        rec,
    )
}

#[test]
fn crawls_a_site_politely_with_robots_optouts_redirects_and_faults() {
    let (srv, slow) = site2();
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(srv.url("/"));
    c.same_site = false;
    c.allow_hosts = vec!["127.0.0.1".into(), "127.0.0.2".into()];
    let (rows, rec) = run(d.path(), c);
    assert_eq!(slow.hits("/slow.html"), 1);
    // politeness: one robots.txt fetch, one request at a time on the host, our user agent
    assert_eq!(srv.hits("/robots.txt"), 1);
    assert_eq!(srv.peak_in_flight(), 1);
    assert!(srv.requests().iter().all(|r| {
        r.header("user-agent")
            .is_some_and(|u| u.starts_with("openwit/"))
    }));
    // robots.txt obeyed
    assert_eq!(srv.hits("/private/x.html"), 0);
    assert_eq!(rec.drops.get("robots_disallowed"), Some(&1));
    // every page fetched once (fragments normalized, duplicates removed)
    for i in [0, 1, 150, 299] {
        assert_eq!(srv.hits(&format!("/p/{i}.html")), 1, "page {i}");
    }
    // opt-outs: pages with i % 10 == 3 (header) or 7 (meta) contribute nothing
    let opted = (0..PAGES).filter(|i| i % 10 == 3 || i % 10 == 7).count() as u64;
    assert_eq!(rec.drops.get("opted_out_page"), Some(&opted));
    assert!(rows.iter().all(|r| {
        let p: usize = r
            .page_url
            .as_deref()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .trim_end_matches(".html")
            .parse()
            .unwrap_or(1);
        p % 10 != 3 && p % 10 != 7
    }));
    // candidates: 3 per remaining page + the big page + the latin-1 page
    let from_pages = rows
        .iter()
        .filter(|r| r.page_url.as_deref().unwrap().contains("/p/"))
        .count();
    assert_eq!(from_pages, (PAGES - opted as usize) * 3);
    assert!(
        rows.iter()
            .any(|r| r.caption == "café au lait" && r.page_lang.as_deref() == Some("fr"))
    );
    assert!(rows.iter().any(|r| r.caption == "big page"));
    assert_eq!(rec.drops.get("page_truncated"), Some(&1));
    // redirect followed once, loop stopped after 5 hops
    assert!(srv.hits("/loop/5") == 1 && srv.hits("/loop/6") == 0);
    assert_eq!(rec.drops.get("too_many_redirects"), Some(&1));
    // slow page timed out, non-HTML and 404 skipped, off-site link never followed
    assert_eq!(rec.drops.get("timeout"), Some(&1));
    assert_eq!(rec.drops.get("not_html"), Some(&1));
    assert_eq!(rec.drops.get("http_404"), Some(&1));
    assert!(rows.iter().all(|r| r.source_id == srv.url("/")));
    // no duplicate (page, image, caption)
    let mut keys: Vec<_> = rows
        .iter()
        .map(|r| (r.page_url.clone(), r.url.clone(), r.caption.clone()))
        .collect();
    keys.sort();
    let n = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), n);
}

#[test]
fn refuses_loopback_unless_allowed() {
    let srv = site();
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(srv.url("/"));
    c.allow_private_networks = false;
    let (rows, rec) = run(d.path(), c);
    assert!(rows.is_empty());
    assert_eq!(srv.requests().len(), 0);
    assert_eq!(
        rec.drops.get("forbidden_address"),
        Some(&1),
        "{:?}",
        rec.drops
    );
    // a host name that resolves to loopback is refused by the resolver
    let d2 = tempfile::tempdir().unwrap();
    let mut c = cfg(format!("http://localhost:{}/", srv.addr().port()));
    c.allow_private_networks = false;
    let (rows, rec) = run(d2.path(), c);
    assert!(rows.is_empty());
    assert_eq!(srv.requests().len(), 0);
    assert_eq!(
        rec.drops.get("forbidden_address"),
        Some(&1),
        "{:?}",
        rec.drops
    );
}

#[test]
fn max_pages_depth_and_sitemaps() {
    let srv = site();
    srv.route(
        "/sitemap.xml",
        Response::bytes(
            "application/xml",
            format!("<?xml version=\"1.0\"?><urlset><url><loc>{}</loc></url><url><loc>{}</loc></url></urlset>", srv.url("/p/250.html"), srv.url("/p/251.html")).into_bytes(),
        ),
    );
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(srv.url("/"));
    c.max_depth = 2;
    c.sitemaps = true;
    let (_, rec) = run(d.path(), c);
    // depth 0: "/", 1: p0, 2: p1, p2 + the private/moved/... links of p0; plus sitemap pages
    assert_eq!(srv.hits("/p/3.html"), 0);
    assert_eq!(srv.hits("/p/250.html"), 1);
    assert_eq!(srv.hits("/sitemap.xml"), 1);
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(srv.url("/p/0.html"));
    c.max_pages = 10;
    let (_, rec2) = run(d.path(), c);
    assert_eq!(rec2.items_in, 10);
    assert!(rec.items_in > 3);
}

#[test]
fn sitemap_parser() {
    let (l, idx) = parse_sitemap(
        b"<sitemapindex><sitemap><loc> https://e.com/s1.xml </loc></sitemap></sitemapindex>",
    );
    assert!(idx);
    assert_eq!(l, ["https://e.com/s1.xml"]);
    let (l, idx) =
        parse_sitemap(b"<urlset><url><loc>https://e.com/a?x=1&amp;y=2</loc></url><url><loc>broken");
    assert!(!idx);
    assert_eq!(l[0], "https://e.com/a?x=1&y=2");
}

/// Runs the crawl in a child process (this test binary), kills it with SIGKILL midway, resumes
/// it here, and compares the candidates with an uninterrupted crawl.
#[test]
fn kill_and_resume_gives_the_same_candidates() {
    if let Ok(work) = std::env::var("OPENWIT_CRAWL_CHILD_WORKDIR") {
        let seed = std::env::var("OPENWIT_CRAWL_CHILD_SEED").unwrap();
        let mut c = cfg(seed);
        c.min_delay_ms = 15;
        run(std::path::Path::new(&work), c);
        return;
    }
    let srv = site();
    let d = tempfile::tempdir().unwrap();
    let killed = d.path().join("killed");
    std::fs::create_dir_all(&killed).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crawl::tests::kill_and_resume_gives_the_same_candidates",
            "--nocapture",
        ])
        .env("OPENWIT_CRAWL_CHILD_WORKDIR", &killed)
        .env("OPENWIT_CRAWL_CHILD_SEED", srv.url("/"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // wait until some pages are recorded, then SIGKILL
    let db = killed.join("crawl/frontier.sqlite");
    let start = std::time::Instant::now();
    loop {
        let done: i64 = rusqlite::Connection::open(&db)
            .and_then(|c| c.query_row("SELECT COUNT(*) FROM urls WHERE status=1", [], |r| r.get(0)))
            .unwrap_or(0);
        if done >= 40 || start.elapsed() > Duration::from_secs(60) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !killed.join("crawl/candidates.parquet").exists(),
        "killed before the end"
    );
    let before = srv.requests().len();
    let (resumed, _) = run(&killed, cfg(srv.url("/")));
    let after = srv.requests().len() - before;
    let fresh_dir = d.path().join("fresh");
    let (fresh, _) = run(&fresh_dir, cfg(srv.url("/")));
    let key = |r: &Candidate| {
        (
            r.page_url.clone(),
            r.url.clone(),
            r.caption.clone(),
            r.caption_source,
        )
    };
    let a: Vec<_> = resumed.iter().map(key).collect();
    let b: Vec<_> = fresh.iter().map(key).collect();
    assert_eq!(a, b);
    // the resumed run did not refetch what was done
    assert!(
        after < srv.requests().len() - before - after + 5,
        "resumed run refetched too much: {after}"
    );
}

#[test]
fn demo_site_is_generated_served_and_crawled() {
    let d = tempfile::tempdir().unwrap();
    let mut c = CrawlConfig::with_seeds(vec![]);
    c.demo_site = Some(DemoSite::generated("site", 12));
    c.min_delay_ms = 0;
    let (rows, rec) = run(d.path(), c);
    let site = d.path().join("site");
    assert!(site.join("robots.txt").exists());
    // the images are real JPEG/PNG files
    let img = image::open(site.join("img/cat.jpg")).unwrap();
    assert_eq!((img.width(), img.height()), (96, 72));
    assert!(image::open(site.join("img/cow.png")).is_ok());
    // 12 pages + index; page 3 opts out; /private/ is disallowed by robots.txt
    assert_eq!(rec.items_in, 13);
    assert_eq!(rec.drops.get("opted_out_page"), Some(&1));
    assert_eq!(rec.drops.get("robots_disallowed"), Some(&1));
    assert!(
        rows.iter()
            .all(|r| r.url.starts_with("http://demo.openwit.test/img/"))
    );
    assert!(rows.iter().any(|r| r.caption.starts_with("Un ")
        || r.caption.starts_with("Ein")
        || r.caption.starts_with("Una")));
    assert!(rows.len() >= 11 * 4, "{}", rows.len());
    assert!(
        rows.iter()
            .all(|r| !r.page_url.as_deref().unwrap().ends_with("/p3.html"))
    );
}

#[test]
fn every_drop_is_listed_with_its_page_and_seed() {
    let srv = TestServer::start();
    srv.route(
        "/robots.txt",
        Response::text("User-agent: *\nDisallow: /private/\n"),
    );
    srv.route(
        "/",
        Response::html(
            "<a href=\"/private/x.html\">p</a><a href=\"/gone.html\">g</a><a href=\"/noai.html\">n</a>\
             <img src=\"/t.gif\" width=\"1\" height=\"1\" alt=\"spacer\"><img src=\"/nocap.jpg\">\
             <img src=\"data:image/png;base64,iVBORw0KGgo=\" alt=\"inline\">\
             <img src=\"/cat.jpg\" alt=\"a cat on a mat\">",
        ),
    );
    srv.route("/gone.html", Response::status(404));
    srv.route(
        "/noai.html",
        Response::html("<img src=\"/x.jpg\" alt=\"x marks\">").header("X-Robots-Tag", "noai"),
    );
    let seed = srv.url("/");
    let d = tempfile::tempdir().unwrap();
    let (rows, rec) = run(d.path(), cfg(seed.clone()));
    assert_eq!(rows.len(), 1);
    let listed =
        crate::dropped::read_listing(&d.path().join("crawl/dropped/crawl.parquet")).unwrap();
    // one row per counted drop, under the counted reason, each from the seed
    assert!(listed.iter().all(|r| r.count == 1));
    assert_eq!(crate::dropped::counts(&listed).0, rec.drops);
    for reason in [
        "robots_disallowed",
        "http_404",
        "opted_out_page",
        "tracking_pixel",
        "no_caption",
        "data_uri",
    ] {
        assert_eq!(rec.drops.get(reason), Some(&1), "{reason}: {:?}", rec.drops);
    }
    assert!(
        listed
            .iter()
            .all(|r| r.input.as_deref() == Some(seed.as_str()))
    );
    let row = |reason: &str| listed.iter().find(|r| r.reason == reason).unwrap();
    // pages by their URL
    assert_eq!(
        row("robots_disallowed").page_url,
        Some(srv.url("/private/x.html"))
    );
    assert_eq!(row("http_404").page_url, Some(srv.url("/gone.html")));
    assert_eq!(row("opted_out_page").page_url, Some(srv.url("/noai.html")));
    assert!(
        row("opted_out_page")
            .detail
            .as_deref()
            .unwrap()
            .contains("noai")
    );
    // images by their URL on their page, with the caption they had
    let pixel = row("tracking_pixel");
    assert_eq!(pixel.url, Some(srv.url("/t.gif")));
    assert_eq!(pixel.page_url, Some(seed.clone()));
    assert_eq!(pixel.caption.as_deref(), Some("spacer"));
    assert_eq!(row("no_caption").url, Some(srv.url("/nocap.jpg")));
    let inline = row("data_uri");
    assert_eq!(inline.caption.as_deref(), Some("inline"));
    assert!(inline.url.as_deref().unwrap().starts_with("data:image/png"));
    assert!(inline.detail.as_deref().unwrap().contains("data: URI"));
}

/// The clip-art world on the real Open Clip Art drawings of `tests/data/openclipart`: the site
/// serves the training part, the crawl finds the authors' texts as captions, and no held-out
/// drawing is ever reachable.
#[test]
fn clipart_site_is_served_and_crawled_without_its_held_out_part() {
    let d = tempfile::tempdir().unwrap();
    let mut site = DemoSite::generated("site", 2);
    site.world = super::DemoWorld::Openclipart;
    site.openclipart =
        Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/openclipart"));
    site.held_out_percent = 30;
    let mut c = CrawlConfig::with_seeds(vec![]);
    c.demo_site = Some(site);
    c.min_delay_ms = 0;
    let (rows, rec) = run(d.path(), c);
    let split = std::fs::read_to_string(d.path().join("site/split.tsv")).unwrap();
    let (mut train, mut held) = (Vec::new(), Vec::new());
    for line in split.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let part = if f[2] == "train" {
            &mut train
        } else {
            &mut held
        };
        // served as img/CLASS_DIR/PATH-WITH-DASHES.png (`clipart::Drawing::rel_png`)
        part.push(format!(
            "{}/{}",
            f[1].replace(' ', "_"),
            f[0].replace('/', "-")
        ));
    }
    assert_eq!(train.len() + held.len(), 10, "{split}");
    assert!(!train.is_empty() && !held.is_empty(), "{split}");
    let url = |rel: &str| format!("http://demo.openwit.test/img/{rel}.png");
    // every served drawing was found (page 3 opts out, but 10 drawings at 2 a page end before it
    // only when few are held out)
    let found: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.url.as_str()).collect();
    for name in &held {
        assert!(
            !found.contains(url(name).as_str()),
            "held-out {name} crawled"
        );
    }
    let opted_out = rec.drops.get("opted_out_page").copied().unwrap_or(0);
    let served: Vec<&String> = train
        .iter()
        .filter(|n| found.contains(url(n).as_str()))
        .collect();
    assert!(
        served.len() + 2 * opted_out as usize >= train.len(),
        "{served:?} {train:?}"
    );
    // the captions are the authors' own texts
    assert!(
        rows.iter().any(|r| r.caption.contains("Apple")),
        "{:?}",
        rows.iter().map(|r| &r.caption).collect::<Vec<_>>()
    );
}
