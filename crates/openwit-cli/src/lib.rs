//! The `openwit` command-line tool: argument parsing, pipeline files, logging, progress bars and
//! exit codes. The stages themselves live in their own crates and are listed in [`stages`].
//!
//! [`main_with`] is the whole binary; tests build variants of it with extra stages.

pub mod args;
pub mod commands;
pub mod logging;
pub mod progress;
pub mod reasons;
pub mod stages;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use args::{Cli, Command, StageArgs};
pub use openwit_core::PipelineDoc;
pub use stages::{StageEntry, registry};

/// Exit code: the run failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad usage or configuration.
pub const EXIT_USAGE: u8 = 2;

/// Runs the `openwit` binary with the built-in stages plus `extra` ones (tests use these).
pub fn main_with(extra: Vec<StageEntry>) -> ExitCode {
    let mut registry = stages::registry();
    registry.extend(extra);

    let mut cmd = Cli::command();
    for e in &registry {
        // The about text goes last: augment_args sets StageArgs' own doc comment.
        cmd = cmd.subcommand(
            <StageArgs as clap::Args>::augment_args(clap::Command::new(e.name)).about(e.about),
        );
    }
    let matches = match cmd.try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    let result = match matches.subcommand() {
        Some((name, sub)) if registry.iter().any(|e| e.name == name) => {
            match <StageArgs as FromArgMatches>::from_arg_matches(sub) {
                // `openwit report WORKDIR` writes the report of any workdir.
                Ok(a) if name == "report" && a.pipeline.is_dir() => {
                    commands::explore::report(&a.pipeline)
                }
                Ok(a) => commands::run::run(&a, &registry, Some(name)),
                Err(e) => {
                    let _ = e.print();
                    return ExitCode::from(EXIT_USAGE);
                }
            }
        }
        _ => match Cli::from_arg_matches(&matches) {
            Ok(cli) => match cli.command {
                Command::Run(a) => commands::run::run(&a, &registry, None),
                Command::Status(a) => commands::status::status(&a),
                Command::Search(a) => commands::explore::search(&a),
                Command::Serve(a) => commands::explore::serve(&a),
                Command::Submit(a) => commands::cluster::submit(&a, &registry),
                Command::Task(a) => commands::cluster::task(&a, &registry),
                Command::Gc(a) => commands::cluster::gc(&a),
                Command::Checkout(a) => commands::cluster::checkout(&a),
                Command::Stage(argv) => {
                    let name = argv
                        .first()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    eprintln!(
                        "error: unknown command `{name}`; commands: run, status, search, serve, submit, task, gc, checkout, {}\n\nFor more information, try '--help'.",
                        registry
                            .iter()
                            .map(|e| e.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    return ExitCode::from(EXIT_USAGE);
                }
            },
            Err(e) => {
                let _ = e.print();
                return ExitCode::from(EXIT_USAGE);
            }
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let usage = e
                .downcast_ref::<openwit_core::Error>()
                .is_some_and(|e| e.is_usage());
            eprintln!("error: {e:#}");
            ExitCode::from(if usage { EXIT_USAGE } else { EXIT_FAILED })
        }
    }
}
