//! Kubernetes: `openwit submit --k8s` prints an Indexed Job per stage that can be planned now
//! (its upstream stages are done) and its finish job; the user applies them in turn.

/// The manifests of stage `stage` with `tasks` planned tasks: a comment saying how to use them,
/// the Indexed Job of its tasks and its finish job (one YAML document each), run by `image`
/// with `pipeline` over `workdir`.
pub fn manifests(stage: &str, tasks: usize, pipeline: &str, workdir: &str, image: &str) -> String {
    let cmd = |extra: &str| {
        format!(
            "[\"/bin/sh\", \"-c\", \"exec openwit task {stage} {pipeline} --workdir {workdir} {extra}\"]"
        )
    };
    let mut out = format!(
        "# openwit {stage}: {tasks} task(s); apply, wait for the job, then apply the finish job.\n\
         # Later stages are planned once this one is done: run `openwit submit --k8s` again then.\n\
         # AWS_* credentials come from the secret `openwit-s3`.\n"
    );
    for (job, completions, extra) in [
        (
            format!("openwit-{stage}"),
            tasks,
            "--index $JOB_COMPLETION_INDEX",
        ),
        (format!("openwit-{stage}-finish"), 1, "--finish"),
    ] {
        out.push_str(&format!(
            "---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {job}\nspec:\n  completions: {completions}\n  \
             parallelism: {completions}\n  completionMode: Indexed\n  backoffLimitPerIndex: 3\n  template:\n    spec:\n      \
             restartPolicy: Never\n      containers:\n      - name: openwit\n        image: {image}\n        \
             command: {cmd}\n        envFrom:\n        - secretRef:\n            name: openwit-s3\n",
            cmd = cmd(extra)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_is_an_indexed_job_and_a_finish_job() {
        let m = manifests("download", 7, "p.toml", "s3://b/w", "img:1");
        assert!(m.starts_with("# openwit download: 7 task(s);"), "{m}");
        assert_eq!(
            m.matches("---\napiVersion: batch/v1\nkind: Job\n").count(),
            2
        );
        assert!(m.contains("name: openwit-download\nspec:\n  completions: 7\n  parallelism: 7\n"));
        assert!(m.contains("name: openwit-download-finish\nspec:\n  completions: 1\n"));
        assert!(m.contains(
            "exec openwit task download p.toml --workdir s3://b/w --index $JOB_COMPLETION_INDEX"
        ));
        assert!(m.contains("--workdir s3://b/w --finish\"]"));
        assert!(m.contains("image: img:1\n"));
    }
}
