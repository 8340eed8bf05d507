//! Command-line arguments (clap derive). Stage subcommands are added from the registry.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// OpenWIT builds CLIP-style image-text datasets: CLIP's WIT recipe, rebuilt.
///
/// Run every stage of a pipeline file with `openwit run pipelines/demo.toml`, or one stage with
/// `openwit <stage> PIPELINE.toml`. Every run resumes where the last one stopped.
///
/// Exit codes: 0 success, 1 the run failed, 2 bad usage or configuration.
#[derive(Debug, Parser)]
#[command(
    name = "openwit",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every stage of PIPELINE in order, skipping finished ones.
    Run(StageArgs),
    /// Show, per stage, its state, tasks done/total, items in/out, drops by reason and elapsed time.
    Status(StatusArgs),
    /// Search the caption index of a workdir: ranked matches with shard, key, caption and url.
    Search(SearchArgs),
    /// Serve a local web UI over a workdir: search, thumbnails, sample details, the report.
    Serve(ServeArgs),
    /// Submit PIPELINE to a cluster: each stage as a Slurm job array of its tasks (see docs/SCALING.md).
    Submit(SubmitArgs),
    /// Run one task (or the finishing reduce step) of a stage over a shared workdir; what a
    /// cluster job runs.
    Task(TaskArgs),
    /// Remove the data of task attempts that no commit names (losers of a race, dead attempts).
    Gc(GcArgs),
    /// Copy the committed outputs of a shared (S3) workdir into a local folder, in the usual layout.
    Checkout(CheckoutArgs),
    /// One stage of the pipeline (listed below).
    #[command(external_subcommand)]
    Stage(Vec<OsString>),
}

/// Options shared by `run` and every stage command.
#[derive(Debug, Clone, Args)]
pub struct StageArgs {
    /// The pipeline file (TOML), e.g. pipelines/demo.toml.
    pub pipeline: PathBuf,
    /// Where outputs and run state live (overrides `[pipeline] workdir`).
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// Tasks run at once (overrides `[pipeline] jobs`; default: the number of cores).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// Discard the outputs of STAGE and of every stage downstream of it, then run.
    #[arg(long, value_name = "STAGE")]
    pub restart: Option<String>,
    /// No progress bars; only warnings on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// More logs on stderr (-v: info, -vv: debug, -vvv: trace); the log file in WORKDIR/logs/ always has info. RUST_LOG overrides.
    #[arg(long, short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// `openwit train` only: start N local processes, one data-parallel rank each (as torchrun's
    /// standalone mode; rank 0 owns the workdir). See docs/SCALING.md.
    #[arg(long, value_name = "N")]
    pub nproc: Option<usize>,
}

/// Options of `openwit status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// The workdir of a run.
    pub workdir: PathBuf,
    /// Print JSON for scripts instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Options of `openwit search`.
#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    /// The workdir of a run (with an `index/` folder made by `openwit index`).
    pub workdir: PathBuf,
    /// The query: words (all must match, stemmed), "quoted phrases", field:value filters
    /// (entry:"golden retriever", domain:example.org, language:en, width:[256 TO *]), OR, -word.
    pub query: String,
    /// Results to show.
    #[arg(long, short = 'n', default_value_t = 20, value_name = "N")]
    pub limit: usize,
    /// Skip the first N results (paging).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub offset: usize,
    /// Only samples whose caption matched this query entry.
    #[arg(long, value_name = "ENTRY")]
    pub entry: Option<String>,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

/// Options of `openwit serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The workdir of a run.
    pub workdir: PathBuf,
    /// The port to listen on.
    #[arg(long, short = 'p', default_value_t = 8765)]
    pub port: u16,
    /// The address to listen on (only 127.0.0.1 by default: the UI has no authentication).
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    pub host: std::net::IpAddr,
    /// Also accept requests naming this host (repeatable). Only the bound address and
    /// `localhost` are accepted otherwise: other names get 403 (DNS-rebinding protection).
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allow_host: Vec<String>,
}

/// Options of `openwit submit`.
#[derive(Debug, Clone, Args)]
pub struct SubmitArgs {
    /// The pipeline file (TOML). Its `[pipeline] workdir` (or --workdir) should be an S3 prefix
    /// (`s3://bucket/prefix`) or a folder every node sees.
    pub pipeline: PathBuf,
    /// Submit with Slurm's `sbatch`: one job array per stage, chained with afterok dependencies.
    #[arg(long, required_unless_present = "k8s")]
    pub slurm: bool,
    /// Print a Kubernetes Indexed Job manifest per planned stage instead of submitting.
    #[arg(long, conflicts_with = "slurm")]
    pub k8s: bool,
    /// Resubmit only the tasks that have no commit (after cancelled or failed jobs).
    #[arg(long)]
    pub resume: bool,
    /// The shared workdir (overrides `[pipeline] workdir`).
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub workdir: Option<String>,
    /// Where the jobs' stdout/stderr go (default ./openwit-slurm-logs; ignored when the sbatch
    /// options name --output).
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// The container image of the Kubernetes manifests (with --k8s).
    #[arg(long, value_name = "IMAGE", default_value = "openwit:latest")]
    pub image: String,
    /// No progress output; only warnings on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// More logs on stderr (-v: info, -vv: debug, -vvv: trace).
    #[arg(long, short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Options passed to every `sbatch` as they are (e.g. --partition=cpu --time=4:00:00
    /// --cpus-per-task=8); put them last.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "SBATCH OPTIONS"
    )]
    pub sbatch: Vec<String>,
}

/// Options of `openwit task`.
#[derive(Debug, Clone, Args)]
pub struct TaskArgs {
    /// The stage.
    pub stage: String,
    /// The pipeline file (TOML).
    pub pipeline: PathBuf,
    /// The task's position in the stage's plan (Slurm: $SLURM_ARRAY_TASK_ID).
    #[arg(long, required_unless_present = "finish", conflicts_with = "finish")]
    pub index: Option<usize>,
    /// Run the stage's reduce step and record it as done (every task must be committed).
    #[arg(long)]
    pub finish: bool,
    /// After --finish, submit the next stage of the pipeline (used by `openwit submit`'s jobs).
    #[arg(long, value_name = "SUBMISSION", requires = "finish")]
    pub chain: Option<String>,
    /// The shared workdir (overrides `[pipeline] workdir`).
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub workdir: Option<String>,
    /// Threads for the task's own parallel work (default: the allocated or available cores).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// Only warnings on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// More logs on stderr (-v: info, -vv: debug, -vvv: trace).
    #[arg(long, short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Options of `openwit gc`.
#[derive(Debug, Clone, Args)]
pub struct GcArgs {
    /// The workdir (a folder or s3://bucket/prefix).
    pub workdir: String,
    /// Also remove data of uncommitted tasks older than this (an attempt younger than this may
    /// still be running).
    #[arg(long, value_name = "SECONDS", default_value_t = 86400)]
    pub grace: i64,
    /// Only count what would be removed.
    #[arg(long)]
    pub dry_run: bool,
}

/// Options of `openwit checkout`.
#[derive(Debug, Clone, Args)]
pub struct CheckoutArgs {
    /// The shared workdir (s3://bucket/prefix or a folder written by `openwit task`).
    pub workdir: String,
    /// The local folder to copy into.
    pub dest: PathBuf,
}
