//! Talking to Slurm: `sbatch` and `scancel` as child processes (the tools every Slurm install
//! has; no library, no accounting needed).

use std::process::Command;

use anyhow::{Context, Result, bail};

/// One `sbatch` submission.
#[derive(Debug, Clone, Default)]
pub struct Job {
    pub name: String,
    /// `--array` spec (`0-9,12`), if an array.
    pub array: Option<String>,
    /// Job ids this one runs after (all must succeed).
    pub after_ok: Vec<String>,
    /// The shell command the job runs.
    pub command: String,
    /// Where stdout/stderr go (a pattern with %x %A %a %j), unless `user` names --output.
    pub output: Option<String>,
    /// The user's own sbatch options, passed as they are.
    pub user: Vec<String>,
}

impl Job {
    /// The `sbatch` arguments.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            "--parsable".to_string(),
            format!("--job-name={}", self.name),
        ];
        if let Some(spec) = &self.array {
            a.push(format!("--array={spec}"));
        }
        if !self.after_ok.is_empty() {
            a.push(format!("--dependency=afterok:{}", self.after_ok.join(":")));
            // A dependency that can never be met (a cancelled or failed task) cancels this job
            // instead of leaving it pending forever; `openwit submit --resume` takes over.
            a.push("--kill-on-invalid-dep=yes".into());
        }
        let user_output = self
            .user
            .iter()
            .any(|u| u == "-o" || u.starts_with("--output") || u.starts_with("-o"));
        if let (Some(o), false) = (&self.output, user_output) {
            a.push(format!("--output={o}"));
        }
        a.extend(self.user.iter().cloned());
        a.push(format!("--wrap={}", self.command));
        a
    }
}

/// Submits `job`; returns its job id.
pub fn sbatch(job: &Job) -> Result<String> {
    let args = job.args();
    let out = Command::new("sbatch")
        .args(&args)
        .output()
        .context("cannot run `sbatch`: is Slurm installed and on PATH (and SLURM_CONF set)?")?;
    if !out.status.success() {
        bail!(
            "sbatch {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    parse_job_id(&String::from_utf8_lossy(&out.stdout))
        .with_context(|| format!("sbatch printed no job id for {}", job.name))
}

/// `--parsable` prints `jobid` or `jobid;cluster`.
fn parse_job_id(stdout: &str) -> Option<String> {
    let id = stdout.trim().split(';').next()?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit())).then(|| id.to_string())
}

/// Cancels the still pending parts of `ids` (running elements keep running: a duplicate of a
/// task is harmless, the first commit wins).
pub fn cancel_pending(ids: &[String]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let out = Command::new("scancel")
        .arg("--state=PENDING")
        .args(ids)
        .output()
        .context("cannot run `scancel`")?;
    if !out.status.success() {
        // Jobs that ended long ago are unknown to Slurm; that is fine.
        tracing::debug!(stderr = %String::from_utf8_lossy(&out.stderr), "scancel");
    }
    Ok(())
}

/// An `--array` spec for sorted indices: runs collapsed (`0-3,7,9-10`).
pub fn array_spec(indices: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let start = indices[i];
        let mut end = start;
        while i + 1 < indices.len() && indices[i + 1] == end + 1 {
            i += 1;
            end = indices[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// Slurm's `MaxArraySize` (array indices must be below it), from `scontrol show config`;
/// Slurm's default 1001 when it cannot be read.
pub fn max_array_size() -> usize {
    Command::new("scontrol")
        .args(["show", "config"])
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout).lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == "MaxArraySize").then(|| v.trim().parse().ok())?
            })
        })
        .unwrap_or(1001)
}

/// Splits sorted task indices into blocks whose indices, minus the block's offset, are below
/// `max`: (offset, indices - offset).
pub fn blocks(indices: &[usize], max: usize) -> Vec<(usize, Vec<usize>)> {
    let max = max.max(1);
    let mut out: Vec<(usize, Vec<usize>)> = Vec::new();
    for &i in indices {
        let offset = i / max * max;
        match out.last_mut() {
            Some((o, b)) if *o == offset => b.push(i - offset),
            _ => out.push((offset, vec![i - offset])),
        }
    }
    out
}

/// Quotes `s` for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_specs_collapse_runs() {
        assert_eq!(array_spec(&[0, 1, 2, 3, 7, 9, 10]), "0-3,7,9-10");
        assert_eq!(array_spec(&[5]), "5");
        assert_eq!(array_spec(&[]), "");
    }

    #[test]
    fn blocks_keep_indices_below_the_array_limit() {
        assert_eq!(
            blocks(&[0, 5, 999, 1000, 1001, 2500], 1000),
            vec![(0, vec![0, 5, 999]), (1000, vec![0, 1]), (2000, vec![500])]
        );
        assert!(blocks(&[], 1000).is_empty());
    }

    #[test]
    fn job_ids_are_parsed() {
        assert_eq!(parse_job_id("123\n").as_deref(), Some("123"));
        assert_eq!(parse_job_id("77;cluster\n").as_deref(), Some("77"));
        assert_eq!(parse_job_id("Submitted batch job 5"), None);
    }

    #[test]
    fn quoting_survives_the_shell() {
        for s in ["plain/path.toml", "with space", "it's", "$HOME", ""] {
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), s);
        }
    }

    #[test]
    fn the_user_output_option_wins() {
        let mut j = Job {
            name: "n".into(),
            array: Some("0-2".into()),
            after_ok: vec!["1".into(), "2".into()],
            command: "true".into(),
            output: Some("/logs/%x-%A_%a.out".into()),
            user: vec![],
        };
        let a = j.args();
        assert!(a.contains(&"--dependency=afterok:1:2".to_string()));
        assert!(a.contains(&"--output=/logs/%x-%A_%a.out".to_string()));
        assert_eq!(a.last().unwrap(), "--wrap=true");
        j.user = vec!["--output=mine".into(), "--partition=cpu".into()];
        let a = j.args();
        assert!(!a.iter().any(|x| x.starts_with("--output=/logs")));
        assert!(a.contains(&"--partition=cpu".to_string()));
    }
}
