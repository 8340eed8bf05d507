//! The demo pipeline without its train and eval stages, through the real binary: the report's
//! funnel shows, for every stage, the numbers `openwit status --json` gives (a stage with a
//! reduce step counts each item once); then `openwit serve --allow-host` accepts that name and
//! refuses others.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn openwit(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_openwit"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .expect("run the openwit binary")
}

/// The funnel rows of a report: stage -> (tasks, items in, items out, dropped).
fn funnel(html: &str) -> Vec<(String, String, u64, u64, u64)> {
    let cell = |row: &str, class: &str| -> String {
        let start = format!("<td class=\"{class}\">");
        let rest = row.split(start.as_str()).nth(1).expect(class);
        rest[..rest.find("</td>").unwrap()].to_string()
    };
    html.split("<tr class=\"stage\" data-stage=\"")
        .skip(1)
        .map(|row| {
            let row = &row[..row.find("</tr>").unwrap()];
            let stage = row[..row.find('"').unwrap()].to_string();
            (
                stage,
                cell(row, "tasks"),
                cell(row, "in").parse().unwrap(),
                cell(row, "out").parse().unwrap(),
                cell(row, "dropped").parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_reports_funnel_equals_openwit_status_for_every_stage_of_the_demo() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../queries");
    let root = root.canonicalize().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = format!(
        r#"
[pipeline]
name = "demo-no-train"
workdir = "work"
seed = 0
allow_private_networks = true

[demo_site]
dir = "site"
pages = 40

[queries]
wikipedia = ["{q}/enwiki-demo-pages-articles-multistream.xml.bz2"]
wordnet = ["{q}/wordnet"]
unigram_min_count = 2
bigram_mode = "top_k"
bigram_top_k = 150
task_size_mb = 1

[crawl]
seeds = ["http://demo.openwit.test/"]
min_delay_ms = 0
per_host = 4

[curate]
balance = {{ t = 20 }}

[download]
shard_size = 50

[index]

[report]
"#,
        q = root.display()
    );
    std::fs::write(dir.path().join("p.toml"), pipeline).unwrap();
    let out = openwit(&["run", "p.toml"], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let work = dir.path().join("work");
    let out = openwit(&["status", "work", "--json"], dir.path());
    assert!(out.status.success());
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stages = status["stages"].as_array().unwrap();

    // The report written by the run's report stage, then the one `openwit report` makes now.
    let by_stage = std::fs::read_to_string(work.join("report/report.html")).unwrap();
    let out = openwit(&["report", "work"], dir.path());
    assert!(out.status.success());
    let by_command = std::fs::read_to_string(work.join("report/report.html")).unwrap();
    for html in [by_stage, by_command] {
        let rows = funnel(&html);
        let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(
            names,
            ["queries", "crawl", "curate", "download", "index"],
            "{rows:?}"
        );
        let mut reduced = 0;
        for (stage, tasks, items_in, items_out, dropped) in &rows {
            let s = stages
                .iter()
                .find(|s| s["stage"] == stage.as_str())
                .unwrap_or_else(|| panic!("status lacks {stage}"));
            let want_tasks = format!("{}/{}", s["tasks_done"], s["tasks_total"]);
            assert_eq!(tasks, &want_tasks, "{stage}: tasks");
            assert_eq!(*items_in, s["items_in"].as_u64().unwrap(), "{stage}: in");
            assert_eq!(*items_out, s["items_out"].as_u64().unwrap(), "{stage}: out");
            let drops: u64 = s["drops"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_u64().unwrap())
                .sum();
            assert_eq!(*dropped, drops, "{stage}: dropped");
            assert!(*items_out > 0, "{stage} kept nothing");
            // Stages whose reduce step keeps other than what the tasks read (the case the report
            // used to count twice).
            if items_in != items_out {
                reduced += 1;
            }
        }
        assert!(reduced >= 2, "{rows:?}");
    }

    // `openwit serve --allow-host`: the name is accepted, another is refused.
    let mut child = Command::new(env!("CARGO_BIN_EXE_openwit"))
        .args([
            "serve",
            "work",
            "--port",
            "0",
            "--allow-host",
            "openwit-demo.test",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    let ask = |host: &str| -> String {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "GET /?q=car HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        buf
    };
    let ok = ask("openwit-demo.test");
    let refused = ask("attacker.example");
    let local = ask(&addr);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains("id=\"results\""));
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    assert!(local.starts_with("HTTP/1.1 200"), "{local}");
}
