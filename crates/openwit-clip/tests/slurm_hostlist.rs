//! `hostlist::first_host` against Slurm's own reader: `scontrol show hostnames LIST` (offline,
//! with a minimal `slurm.conf`) on the host lists of Slurm's manual pages and on generated ones.
//! Where Slurm reads a list, the first host it prints is ours; where it refuses the list, we find
//! no host either. Needs Slurm's `scontrol` (Debian's slurm-client, which `.ci/run` installs for
//! the Slurm tests); without it the test says so and passes, unless `CI` is set, where it fails.

use std::path::Path;
use std::process::Command;

use openwit_clip::hostlist::first_host;
use rand::{Rng as _, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What Slurm makes of `list`: its first host, or `None` when it refuses the list.
fn slurm_first(conf: &Path, list: &str) -> Option<String> {
    let out = Command::new("scontrol")
        .args(["--", "show", "hostnames", list])
        .env("SLURM_CONF", conf)
        .output()
        .expect("scontrol runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A refused list; or a range it reports as invalid (in an entry of several brackets
    // Slurm 22.05 then drops that entry and prints the rest, but the list is not a valid one).
    if stderr.contains("Invalid hostlist") || stderr.contains("Invalid range") {
        return None;
    }
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "scontrol on {list:?}: {stderr}"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(str::to_string)
}

/// The generator's draws, seeded: the generated lists are the same on every run.
struct Rng(ChaCha8Rng);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0.random_range(0..n)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.0.random_range(0..items.len())]
    }
}

/// A name part: letters, digits and the punctuation host names use.
fn name(rng: &mut Rng, max: u64) -> String {
    let chars = b"abnodegpu0123456789-_.";
    (0..rng.below(max + 1))
        .map(|_| chars[rng.below(chars.len() as u64) as usize] as char)
        .collect()
}

/// The inside of a bracket: ranges `lo`, `lo-`, `lo-hi`, zero-padded or not; when `bad`, now
/// and then one that Slurm refuses (hi below lo, not digits, empty, two dashes).
fn ranges(rng: &mut Rng, bad: bool) -> String {
    let n = 1 + rng.below(3);
    let mut parts = Vec::new();
    for _ in 0..n {
        let width = 1 + rng.below(3) as usize;
        let lo = rng.below(10u64.pow(width as u32).min(200));
        let lo_text = format!("{lo:0width$}");
        let part = match rng.below(if bad { 9 } else { 5 }) {
            0 | 1 => lo_text,
            2 => format!("{lo_text}-"),
            3 | 4 => {
                let hi = lo + rng.below(6);
                let hi_width = (width as u64 + rng.below(2)) as usize;
                format!("{lo_text}-{hi:0hi_width$}")
            }
            5 if lo > 0 => format!("{lo_text}-{}", lo - 1),
            6 => rng.pick(&["x", "a-b", "1-2-3", "1--2", "-2"]).to_string(),
            7 => String::new(),
            _ => format!("{lo_text}-{lo}"),
        };
        parts.push(part);
    }
    parts.join(",")
}

/// One entry: a name, or a prefix with 1 to 3 bracketed ranges and text between them; when
/// `bad`, now and then a refused range or text after the last bracket.
fn entry(rng: &mut Rng, bad: bool) -> String {
    let mut e = name(rng, 5);
    let groups = rng.below(4);
    if groups == 0 && e.is_empty() {
        e.push('n');
    }
    for g in 0..groups {
        e.push('[');
        e.push_str(&ranges(rng, bad));
        e.push(']');
        if g + 1 < groups {
            e.push_str(&name(rng, 3));
        }
    }
    if bad && groups > 0 && rng.below(6) == 0 {
        e.push_str(&name(rng, 3).replace(char::is_numeric, "x"));
        e.push('z');
    }
    e
}

/// A list: leading separators now and then, the first entry (every other list one that may hold
/// what Slurm refuses), then up to two valid entries.
fn list(rng: &mut Rng) -> String {
    let seps = [",", " ", ", ", "\t", ",,"];
    let mut l = String::new();
    if rng.below(8) == 0 {
        l.push_str(rng.pick(&seps));
    }
    let bad = rng.below(2) == 0;
    l.push_str(&entry(rng, bad));
    for _ in 0..rng.below(3) {
        l.push_str(rng.pick(&seps));
        l.push_str(&entry(rng, false));
    }
    l
}

/// Host lists of Slurm 22.05's manual pages (slurm.conf(5), scontrol(1), srun(1), sbatch(1),
/// sinfo(1)), the two that slurm.conf(5) gives as not being one among them, and the examples of
/// libslurm's host list pages (the last three).
const MANUAL: &[&str] = &[
    "lx[10-20]",
    "nvidia[0-3]",
    "nid[10-20]",
    "lx[0-7]",
    "tux[1-3]",
    "tux[0-7]",
    "node[5-7]",
    "nid[1-3],nid[10-20]",
    "dev[9-17]",
    "adev[10-15]",
    "unit[0-31]rack",
    "tux[2,1-2]",
    "tux[1-2,2]",
    "tux[0-3,12,18-20]",
    "snowflake[0-48]",
    "s[0-2,4-8,12]",
    "rack[0-63]_blade[0-41]",
    "nvidia[0,2-3]",
    "lx[15,18,32-33]",
    "linux[0000-1023]",
    "linux[00-17]",
    "linux[0-64,128]",
    "frontend[00-03]",
    "dev[0-25].llnl.gov",
    "dev[0-8,18-25]",
    "adev[2,4-7]",
    "linux[1-3,6]",
    "node1,node[2-5,12]",
    "tux[0-5,12,20-25]",
];

#[test]
fn first_host_agrees_with_scontrol() {
    let have = Command::new("scontrol").arg("--version").output().is_ok();
    if !have {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs Slurm's scontrol (slurm-client, .ci/apt-packages.txt)"
        );
        eprintln!("skipped: no scontrol on this machine (install Debian's slurm-client)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("slurm.conf");
    std::fs::write(
        &conf,
        "ClusterName=hostlist\nSlurmctldHost=localhost\nNodeName=localhost CPUs=1 State=UNKNOWN\nPartitionName=p Nodes=localhost Default=YES\n",
    )
    .unwrap();

    let mut rng = Rng(ChaCha8Rng::seed_from_u64(19));
    let generated: Vec<String> = (0..600).map(|_| list(&mut rng)).collect();
    let mut read = 0;
    let mut refused = 0;
    let mut multi = 0;
    for l in MANUAL.iter().map(|s| s.to_string()).chain(generated) {
        let slurm = slurm_first(&conf, &l);
        assert_eq!(first_host(&l), slurm, "host list {l:?}");
        match slurm {
            Some(_) => read += 1,
            None => refused += 1,
        }
        multi += usize::from(l.matches('[').count() > 1);
    }
    // The generator reaches every case: lists Slurm reads, lists it refuses, several ranges.
    eprintln!("{read} lists read, {refused} refused, {multi} with several brackets");
    assert!(read >= 300 && refused >= 100 && multi >= 100);
}
