//! Our generated WARC and WAT files are real formats: warcio (the reference Python reader)
//! reads them record by record with the same types, URIs and payloads we wrote; and our reader
//! reads a WARC file that warcio writes.

use std::process::Command;

fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 is needed (see .ci/requirements.txt)");
    assert!(
        out.status.success(),
        "python failed (pip install -r .ci/requirements.txt): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const READ: &str = r#"
import sys, json
from warcio.archiveiterator import ArchiveIterator
out = []
with open(sys.argv[1], 'rb') as f:
    for r in ArchiveIterator(f):
        body = r.content_stream().read()
        out.append([r.rec_type, r.rec_headers.get_header('WARC-Target-URI') or '', len(body)])
print(json.dumps(out))
"#;

#[test]
fn warcio_reads_our_warc_and_wat() {
    let d = tempfile::tempdir().unwrap();
    for (name, wat) in [("a.warc.gz", false), ("a.wat.gz", true)] {
        let p = d.path().join(name);
        let mut f = std::fs::File::create(&p).unwrap();
        if wat {
            openwit_sources::fixtures::write_wat(&mut f, 5, 12, 4).unwrap();
        } else {
            openwit_sources::fixtures::write_warc(&mut f, 5, 12, 4).unwrap();
        }
        drop(f);
        let theirs: Vec<(String, String, usize)> =
            serde_json::from_str(&python(READ, &[p.to_str().unwrap()])).unwrap();
        let ours: Vec<(String, String, usize)> = openwit_sources::warc::WarcReader::new(
            std::io::BufReader::new(std::fs::File::open(&p).unwrap()),
            true,
        )
        .map(|e| match e {
            openwit_sources::warc::Event::Record(r) => {
                // warcio strips the HTTP headers of response/request records from the payload
                let body_len = if matches!(r.warc_type(), "response" | "request") {
                    let i = r.body.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
                    r.body.len() - i - 4
                } else {
                    r.body.len()
                };
                (
                    r.warc_type().to_string(),
                    r.header("WARC-Target-URI").unwrap_or("").to_string(),
                    body_len,
                )
            }
            other => panic!("{other:?}"),
        })
        .collect();
        assert_eq!(theirs, ours, "{name}");
        assert_eq!(ours.len(), if wat { 13 } else { 25 });
    }
}

#[test]
fn we_read_a_warc_that_warcio_writes() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("w.warc.gz");
    python(
        r#"
import sys
from io import BytesIO
from warcio.warcwriter import WARCWriter
from warcio.statusandheaders import StatusAndHeaders
with open(sys.argv[1], 'wb') as out:
    w = WARCWriter(out, gzip=True)
    html = b'<html lang="en"><body><img src="/a.jpg" alt="a red apple"><img src="b.png" title="a yellow bus"></body></html>'
    h = StatusAndHeaders('200 OK', [('Content-Type', 'text/html; charset=utf-8')], protocol='HTTP/1.1')
    w.write_record(w.create_warc_record('http://shop.example/fruit/', 'response', payload=BytesIO(html), http_headers=h))
    h2 = StatusAndHeaders('200 OK', [('Content-Type', 'text/html'), ('X-Robots-Tag', 'noai')], protocol='HTTP/1.1')
    w.write_record(w.create_warc_record('http://shop.example/no/', 'response', payload=BytesIO(html), http_headers=h2))
"#,
        &[p.to_str().unwrap()],
    );
    let mut rows = Vec::new();
    let st = openwit_sources::warc_stage::process_file(
        Box::new(std::fs::File::open(&p).unwrap()),
        "w",
        &mut |c| rows.push(c),
        &|_| false,
    )
    .unwrap();
    assert_eq!(st.pages, 2);
    assert_eq!(st.drops.get("opted_out_page"), 1);
    let got: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.url.as_str(), r.caption.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("http://shop.example/a.jpg", "a red apple"),
            ("http://shop.example/fruit/b.png", "a yellow bus")
        ]
    );
    assert!(rows[0].fetch_time.is_some());
}

/// warcio's `capture_http` records what a loopback server sends: the same page chunked,
/// gzip, deflate (zlib and raw), br and gzip+chunked, plus a corrupt gzip body. Every decodable
/// page gives its real caption; the corrupt one is an `undecodable_body` drop.
#[test]
fn warcio_capture_http_of_each_encoding() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("cap.warc.gz");
    let out = python(
        r#"
import sys, gzip, zlib, brotli, threading, http.client, json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from warcio.capture_http import capture_http

def page(name):
    return ('<html lang="fr"><body><p>' + 'texte ' * 400 + '</p><img src="/img/' + name +
            '.jpg" alt="Une voiture rouge garée, codage ' + name + '"></body></html>').encode('utf-8')

def raw_deflate(b):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(b) + c.flush()

ENC = {
    'chunked': (None, lambda b: b),
    'gzip': ('gzip', gzip.compress),
    'deflate': ('deflate', zlib.compress),
    'deflate-raw': ('deflate', raw_deflate),
    'br': ('br', brotli.compress),
    'gzip-chunked': ('gzip', gzip.compress),
    'broken-gzip': ('gzip', lambda b: gzip.compress(b)[:12] + b'\x00' * 40),
}

class H(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def log_message(self, *a):
        pass
    def do_GET(self):
        name = self.path.strip('/')
        ce, f = ENC[name]
        body = f(page(name))
        self.send_response(200)
        self.send_header('Content-Type', 'text/html; charset=utf-8')
        if ce:
            self.send_header('Content-Encoding', ce)
        if name.endswith('chunked'):
            self.send_header('Transfer-Encoding', 'chunked')
            self.end_headers()
            # chunks of 7 bytes: a caption is cut across many of them
            for i in range(0, len(body), 7):
                part = body[i:i + 7]
                self.wfile.write(b'%x\r\n' % len(part) + part + b'\r\n')
            self.wfile.write(b'0\r\n\r\n')
        else:
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

srv = ThreadingHTTPServer(('127.0.0.1', 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
port = srv.server_address[1]
with capture_http(sys.argv[1]):
    for name in ENC:
        c = http.client.HTTPConnection('127.0.0.1', port)
        c.request('GET', '/' + name)
        c.getresponse().read()
        c.close()
srv.shutdown()
print(json.dumps({n: 'http://127.0.0.1:%d/' % port for n in ENC}))
"#,
        &[p.to_str().unwrap()],
    );
    let bases: std::collections::BTreeMap<String, String> = serde_json::from_str(&out).unwrap();
    let mut rows = Vec::new();
    let st = openwit_sources::warc_stage::process_file(
        Box::new(std::fs::File::open(&p).unwrap()),
        "cap",
        &mut |c| rows.push(c),
        &|_| false,
    )
    .unwrap();
    // a request and a response record per URL
    assert_eq!(st.records, 2 * bases.len() as u64);
    assert_eq!(st.drops.get("undecodable_body"), 1);
    assert_eq!(st.pages, bases.len() as u64 - 1);
    let mut got: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r.page_url.clone().unwrap(),
                r.url.clone(),
                r.caption.clone(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String, String)> = bases
        .iter()
        .filter(|(n, _)| *n != "broken-gzip")
        .map(|(n, base)| {
            (
                format!("{base}{n}"),
                format!("{base}img/{n}.jpg"),
                format!("Une voiture rouge garée, codage {n}"),
            )
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
}
