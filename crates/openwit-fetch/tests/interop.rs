//! Interop: shards written by the download stage are read by the `webdataset` Python package and
//! pyarrow (tests/interop/check_shards.py). Needs `python3` with the packages of
//! `.ci/requirements.txt`; without them the test says so and passes only outside CI.

use std::path::Path;
use std::process::Command;

use image::{Rgb, RgbImage};
use openwit_fetch::{Config, DownloadStage, EncodeFormat};
use openwit_testkit::{Response, TestServer};

fn python_ready() -> bool {
    Command::new("python3")
        .args(["-c", "import webdataset, pyarrow, PIL"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn webdataset_and_pyarrow_read_every_shard() {
    if !python_ready() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install .ci/requirements.txt (webdataset, pyarrow, pillow)"
        );
        eprintln!("SKIPPED: python3 with webdataset, pyarrow and pillow is not installed");
        return;
    }
    let server = TestServer::start();
    let mut urls = Vec::new();
    for i in 0..25u32 {
        let img = RgbImage::from_fn(200 + 10 * i, 150 + 7 * i, |x, y| {
            Rgb([
                (x * 3 % 256) as u8,
                ((y + i) % 256) as u8,
                (i * 9 % 256) as u8,
            ])
        });
        let path = format!("/p/{i}.jpg");
        if i % 7 == 3 {
            server.route(&path, Response::status(404));
        } else {
            server.route(
                &path,
                Response::bytes(
                    "image/jpeg",
                    openwit_fetch::imaging::encode(&img, EncodeFormat::Jpg, 90).unwrap(),
                ),
            );
        }
        urls.push(server.url(&path));
    }
    let dir = tempfile::tempdir().unwrap();
    // A gzipped JSON-lines input with a carried column.
    {
        use std::io::Write;
        let f = std::fs::File::create(dir.path().join("list.jsonl.gz")).unwrap();
        let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
        for (i, u) in urls.iter().enumerate() {
            let line = serde_json::json!({"link": u, "text": format!("a photo, number {i}"), "lang": "en"});
            writeln!(gz, "{line}").unwrap();
        }
        gz.finish().unwrap();
    }
    let cfg: Config = toml::from_str(
        r#"
        input = "list.jsonl.gz"
        url_col = "link"
        caption_col = "text"
        save_additional_columns = ["lang"]
        shard_size = 10
        "#,
    )
    .unwrap();
    let stage = DownloadStage::new(cfg, dir.path(), true).unwrap();
    let work = dir.path().join("work");
    openwit_testkit::run_stage(&work, 2, &stage).unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/check_shards.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(work.join("download"))
        .arg("256")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("checked 21 samples in 3 shards"), "{text}");
}
