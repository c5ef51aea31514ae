//! The `agent` binary: parse the command line, set up logging, run. Exit status: 0 after a
//! clean shutdown, 1 on a runtime error (listener, configuration, name conflict), 2 on a
//! flag error (clap). `agent validate` and `agent fmt` exit 0 on success and 1 otherwise;
//! they start no runtime and open no socket.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use agent::cli::{Cli, Command};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("AGENT_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match cli.command {
        Command::Validate(args) => {
            match agent::validate::validate_file(
                &args.config_file,
                &agent::config::ProcessEnvironment,
            ) {
                agent::validate::Outcome::Valid(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                agent::validate::Outcome::Invalid(text) => {
                    eprint!("{text}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Fmt(args) => match agent::fmt::run(&args, &mut std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        },
        Command::Run(args) => {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(worker_threads())
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            let result = rt.block_on(agent::run::run(args));
            // Connections and lookups still in flight must not hold the exit up.
            rt.shutdown_timeout(Duration::from_secs(1));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// Worker threads: the cores available, at most 4 (the agent's own work is light; scrape
/// load is spread over the cluster).
fn worker_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4)
}
