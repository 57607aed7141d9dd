//! `appliance`: the command-line entry point.

use appliance::config::Config;
use appliance::dataplane::{self, RunOptions};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// A DPDK stateful NAT firewall for the edge of a private network.
#[derive(Debug, Parser)]
#[command(name = "appliance", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the data path with a configuration file until SIGINT/SIGTERM.
    Run {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Stop by itself after this many seconds (benchmarks, tests).
        #[arg(long, value_parser = parse_seconds)]
        duration: Option<Duration>,
        /// Log per-port packet rates every this many seconds.
        #[arg(long, value_parser = parse_seconds)]
        stats_interval: Option<Duration>,
        /// Print the final report as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check a configuration file and exit: 0 if valid, 2 with every problem otherwise.
    Check {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(v > 0.0 && v < 1e9) {
        return Err(format!("{s:?} must be a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// Exit status for bad configuration, arguments or environment.
const EXIT_BAD_INPUT: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_BAD_INPUT)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match cli.command {
        Command::Check { config } => match Config::load(&config) {
            Ok(c) => {
                println!(
                    "{}: ok ({} port(s), lcores {:?})",
                    config.display(),
                    c.port.len(),
                    c.eal.lcores
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Command::Run {
            config,
            duration,
            stats_interval,
            json,
        } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            let stop = Arc::new(AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
                    return fail(format!("cannot install the handler for signal {sig}: {e}"));
                }
            }
            let options = RunOptions {
                duration,
                stats_interval,
            };
            match dataplane::run(&config, &options, &stop) {
                Ok(report) => {
                    if json {
                        match serde_json::to_string_pretty(&report) {
                            Ok(text) => println!("{text}"),
                            Err(e) => return fail(format!("cannot encode the report: {e}")),
                        }
                    } else {
                        print!("{report}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
    }
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(EXIT_BAD_INPUT)
}
