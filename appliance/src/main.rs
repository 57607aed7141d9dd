//! `appliance`: the command-line entry point.

use appliance::config::{Config, ConfigError, Mapping, DEFAULT_SOCKET};
use appliance::control::protocol::{self, Request, Response};
use appliance::control::{render, socket, PolicySummary, MAX_SESSIONS_LIMIT};
use appliance::dataplane::{self, RunOptions};
use appliance::policy::Policy;
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
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
    /// The whole-data-path throughput benchmark: the real worker loop and pipeline on ring
    /// ports, fed by a generator lcore with 64-byte UDP frames of `--flows` flows; reports
    /// session setup rate, established packets per second and cycles per packet.
    Bench {
        /// Distinct flows (sessions created first, then traffic on them).
        #[arg(long, default_value_t = 1_000_000)]
        flows: u32,
        /// Seconds of established traffic to measure.
        #[arg(long, value_parser = parse_seconds, default_value = "10")]
        duration: Duration,
        /// Worker cores.
        #[arg(long, default_value_t = 1)]
        workers: u16,
        /// EAL lcores: the main lcore, one per worker, then the generator's (default: main
        /// and generator share CPU 0, workers on CPUs 1..).
        #[arg(long)]
        lcores: Option<String>,
        /// Run without huge pages (slower; for machines without them).
        #[arg(long)]
        no_huge: bool,
        /// Remote servers each inside endpoint opens flows to (1: every flow from an inside
        /// endpoint of its own).
        #[arg(long, default_value_t = 1000)]
        remotes: u32,
        /// NAT mapping: endpoint-independent or endpoint-dependent.
        #[arg(long, value_parser = parse_mapping, default_value = "endpoint-independent")]
        mapping: Mapping,
        /// SNAT pool addresses (192.0.2.16 upwards, at most 200); 0: the outside port's own.
        #[arg(long, default_value_t = 0)]
        addresses: u8,
        /// Session table capacity (default: the flows and a tenth). Equal to --flows, the
        /// report's resident memory per session is with the table full.
        #[arg(long)]
        max_sessions: Option<u32>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check a configuration file and compile its policy: print a summary and exit 0, or
    /// list every problem and exit 2.
    Check {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Counters of the running appliance: ports, workers, sessions, NAT, drops.
    Stats {
        #[command(flatten)]
        target: Target,
    },
    /// Live sessions of the running appliance.
    #[command(after_help = SESSIONS_HELP)]
    Sessions {
        #[command(flatten)]
        target: Target,
        /// Only sessions matching this expression, e.g. "proto tcp and host 10.0.1.5".
        #[arg(long, short)]
        filter: Option<String>,
        /// Most sessions to list.
        #[arg(long, short, default_value_t = appliance::control::DEFAULT_SESSIONS_LIMIT as u64,
              value_parser = clap::value_parser!(u64).range(1..=MAX_SESSIONS_LIMIT as u64))]
        limit: u64,
    },
    /// Make the running appliance re-read its configuration file (like SIGHUP). Exit 1 if it
    /// refuses the file; the running policy then stays.
    Reload {
        #[command(flatten)]
        target: Target,
    },
    /// The running appliance's policy: generation and summary.
    Policy {
        #[command(flatten)]
        target: Target,
    },
    /// Drain the running appliance: its health probe fails (HTTP 503, a reset to a TCP
    /// probe's SYN) while traffic keeps flowing, so that the load balancer sends new flows
    /// to other instances before maintenance. Lasts until `appliance resume` or a restart.
    Drain {
        #[command(flatten)]
        target: Target,
    },
    /// End a drain: the health probe passes again.
    Resume {
        #[command(flatten)]
        target: Target,
    },
    /// What the appliance would do with one packet: its class, the rule that matches, the
    /// NAT it gets and where it goes. Runs the real pipeline on the configuration file; needs
    /// no running appliance. Exit 0 with the answer, 2 for a bad expression or file.
    #[command(after_help = EXPLAIN_HELP)]
    Explain {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// The packet, one argument: "udp 10.0.1.10:5000 -> 198.51.100.10:53" (forms below).
        flow: String,
        /// Also show what the reply to the packet becomes.
        #[arg(long)]
        reply: bool,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
}

const EXPLAIN_HELP: &str =
    "Flow forms (quote the whole flow: \"->\" means a redirection to the shell):
  tcp|udp SRC:PORT -> DST:PORT [on PORT] [flags syn,ack,fin,rst,psh,urg,ece,cwr|none] [ttl N]
  icmp SRC -> DST [on PORT] [type echo-request|echo-reply|unreachable|time-exceeded|N]
                  [code N] [id N] [ttl N]
  either, on a gwlb port: [tunnel geneve|internal|external|none] [vni N] [options HEX]
TCP packets are SYNs unless `flags` says otherwise; ICMP ones echo requests with id 1; TTL 64.
Without `on`, a source in the private prefixes arrives on the inside port, others on the
outside port. On a gwlb port the packet comes in the port's tunnel (GENEVE: VNI 0, AWS's
options; VXLAN: the internal tunnel from a private source, else the external one) unless
`tunnel` says otherwise. Examples:
  appliance explain -c configs/testbed.toml \"tcp 10.0.1.10:40000 -> 203.0.113.10:443\" --reply
  appliance explain -c configs/testbed.toml \"icmp 203.0.113.10 -> 192.0.2.2\"
  appliance explain -c configs/gwlb-aws.toml \"udp 10.0.1.10:5000 -> 198.51.100.10:53\" --reply";

const SESSIONS_HELP: &str = "Filter terms, joined by \"and\":
  proto tcp|udp|icmp|N   host A.B.C.D   net A.B.C.D/N   port N
  state syn_sent|syn_received|established|fin_wait|close_wait|time_wait|closed|active
  class tcp_established|tcp_transitory|udp|icmp   worker N   generation N
host, net and port match the inside, outside (translated) or remote side.";

/// How to reach a running appliance.
#[derive(Debug, Args)]
struct Target {
    /// The control socket; default: the one `--config` names, else /run/appliance/control.sock.
    #[arg(long, short)]
    socket: Option<PathBuf>,
    /// The running appliance's configuration file, to find its control socket.
    #[arg(long, short, conflicts_with = "socket")]
    config: Option<PathBuf>,
    /// Print the raw JSON data instead of a table.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for the answer.
    #[arg(long, value_parser = parse_seconds, default_value = "30")]
    timeout: Duration,
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

fn parse_mapping(s: &str) -> Result<Mapping, String> {
    match s {
        "endpoint-independent" => Ok(Mapping::EndpointIndependent),
        "endpoint-dependent" => Ok(Mapping::EndpointDependent),
        _ => Err(format!(
            "{s:?} is not a mapping: endpoint-independent or endpoint-dependent"
        )),
    }
}

/// Exit status for bad configuration, arguments or environment, or no appliance to ask.
const EXIT_BAD_INPUT: u8 = 2;
/// Exit status when the running appliance answered with an error (e.g. a refused reload).
const EXIT_REFUSED: u8 = 1;

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
    if !matches!(cli.command, Command::Run { .. } | Command::Bench { .. }) {
        appliance::sys::default_sigpipe();
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Stats { target } => {
            ask(&target, protocol::Command::Stats, |v| Ok(render::stats(v)))
        }
        Command::Sessions {
            target,
            filter,
            limit,
        } => {
            if let Some(f) = &filter {
                if let Err(e) = appliance::pipeline::SessionFilter::parse(f) {
                    return fail(e);
                }
            }
            let command = protocol::Command::Sessions {
                filter,
                limit: usize::try_from(limit).ok(),
            };
            ask(&target, command, render::sessions)
        }
        Command::Reload { target } => ask(&target, protocol::Command::Reload, |v| {
            Ok(render::reload(v))
        }),
        Command::Policy { target } => ask(&target, protocol::Command::Policy, render::policy),
        Command::Drain { target } => {
            ask(&target, protocol::Command::Drain, |v| Ok(render::drain(v)))
        }
        Command::Resume { target } => {
            ask(&target, protocol::Command::Resume, |v| Ok(render::drain(v)))
        }
        Command::Bench {
            flows,
            duration,
            workers,
            lcores,
            no_huge,
            remotes,
            mapping,
            addresses,
            max_sessions,
            json,
        } => {
            if flows == 0 || workers == 0 || remotes == 0 {
                return fail("--flows, --workers and --remotes must be at least 1");
            }
            if addresses > 200 {
                return fail("--addresses: at most 200 (192.0.2.16 to 192.0.2.215)");
            }
            let spec = dataplane::bench::BenchSpec {
                flows,
                remotes,
                mapping,
                addresses,
                max_sessions,
            };
            if spec.max_sessions() < flows {
                return fail("--max-sessions must hold --flows");
            }
            let lcores = lcores.unwrap_or_else(|| {
                let mut l = vec!["0@0".to_string()];
                l.extend((1..=workers).map(|w| format!("{w}@{}", 1 + (w - 1) % 63)));
                l.push(format!("{}@0", workers + 1));
                l.join(",")
            });
            let text = dataplane::bench::config_text(&lcores, workers, &spec, !no_huge);
            let config = match Config::parse(&text, "bench") {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            let options = RunOptions {
                duration: Some(duration),
                stats_interval: None,
                bench: Some(spec),
            };
            run(Path::new("<bench>"), &config, &options, json)
        }
        Command::Explain {
            config,
            flow,
            reply,
            json,
        } => explain(&config, &flow, reply, json),
        Command::Run {
            config,
            duration,
            stats_interval,
            json,
        } => {
            let options = RunOptions {
                duration,
                stats_interval,
                bench: None,
            };
            match Config::load(&config) {
                Ok(c) => run(&config, &c, &options, json),
                Err(e) => fail(e),
            }
        }
    }
}

/// Runs the data path (`appliance run`, `appliance bench`) until SIGINT, SIGTERM or the end
/// of its duration, then prints its report: a table, or JSON with `json`.
fn run(path: &Path, config: &Config, options: &RunOptions, json: bool) -> ExitCode {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            return fail(format!("cannot install the handler for signal {sig}: {e}"));
        }
    }
    let report = match dataplane::run(path, config, options, &stop) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if json {
        return print_json(&report, "report");
    }
    print!("{report}");
    ExitCode::SUCCESS
}

/// Loads, checks and compiles a configuration file; on failure prints every error on its own
/// line (file, field, value, what to do) and gives exit status 2.
fn load_policy(path: &Path) -> Result<(Config, Policy), ExitCode> {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(ConfigError::Invalid { origin, errors }) => {
            for e in &errors {
                eprintln!("error: {origin}: {e}");
            }
            return Err(ExitCode::from(EXIT_BAD_INPUT));
        }
        Err(e) => return Err(fail(e)),
    };
    match Policy::compile(&config, 1) {
        Ok(p) => Ok((config, p)),
        Err(appliance::policy::PolicyError::Invalid(errors)) => {
            for e in &errors {
                eprintln!("error: {}: {e}", path.display());
            }
            Err(ExitCode::from(EXIT_BAD_INPUT))
        }
        Err(e) => Err(fail(format!("{}: {e}", path.display()))),
    }
}

/// `appliance explain`: the answer, exit 0; a bad flow expression, configuration or port
/// name, exit 2.
fn explain(path: &Path, flow: &str, reply: bool, json: bool) -> ExitCode {
    let flow = match appliance::explain::Flow::parse(flow) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    let (config, policy) = match load_policy(path) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let options = appliance::explain::Options { reply };
    let explanation = match appliance::explain::explain(&config, &policy, &flow, &options) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    if json {
        return print_json(&explanation, "explanation");
    }
    print!("{}", explanation.render());
    ExitCode::SUCCESS
}

/// `appliance check`: every error on its own line (file, field, value, what to do), exit 2;
/// or a summary of the compiled policy, exit 0.
fn check(path: &Path) -> ExitCode {
    let (config, policy) = match load_policy(path) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let cpus = match config.check_machine() {
        Ok(cpus) => cpus,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    println!(
        "{}: ok ({} port(s), {} worker(s), lcores {:?})",
        path.display(),
        config.port.len(),
        config.workers(),
        config.eal.lcores_for(&cpus)
    );
    print!("{}", PolicySummary::new(&config, &policy));
    ExitCode::SUCCESS
}

/// The control socket to talk to: `--socket`, or the one `--config` names, or the default.
///
/// Only `control.socket` is read from the file: the rest may be mid-edit (that is when one
/// runs `appliance reload`), and the running appliance judges it.
fn socket_path(target: &Target) -> Result<PathBuf, String> {
    if let Some(s) = &target.socket {
        return Ok(s.clone());
    }
    let Some(file) = &target.config else {
        return Ok(PathBuf::from(DEFAULT_SOCKET));
    };
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        format!(
            "{}: cannot find control.socket, the file is not TOML ({}); give --socket",
            file.display(),
            e.message().trim_end()
        )
    })?;
    match table.get("control").and_then(|c| c.get("socket")) {
        None => Ok(PathBuf::from(DEFAULT_SOCKET)),
        Some(toml::Value::String(s)) if s.is_empty() => Err(format!(
            "{}: control.socket = \"\": that appliance has no control socket",
            file.display()
        )),
        Some(toml::Value::String(s)) => Ok(PathBuf::from(s)),
        Some(other) => Err(format!(
            "{}: control.socket = {other}: must be a path",
            file.display()
        )),
    }
}

/// Sends `command` to the appliance and prints its answer: JSON with `--json`, else what
/// `table` makes of it. Exit 2 if the appliance cannot be reached, 1 if it answers an error.
fn ask(
    target: &Target,
    command: protocol::Command,
    table: impl Fn(&serde_json::Value) -> Result<String, String>,
) -> ExitCode {
    let path = match socket_path(target) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let request = Request {
        v: protocol::VERSION,
        command,
    };
    let response: Response = match socket::request(&path, &request, target.timeout) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if !response.ok {
        eprintln!(
            "error: {}",
            response
                .error
                .as_deref()
                .unwrap_or("the appliance refused without saying why")
        );
        return ExitCode::from(EXIT_REFUSED);
    }
    let data = response.data.unwrap_or(serde_json::Value::Null);
    if target.json {
        return print_json(&data, "reply");
    }
    match table(&data) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("{}: {e}", path.display())),
    }
}

/// Prints `value` as indented JSON, exit 0; exit 2 if it cannot be encoded (`what` names it).
fn print_json(value: &impl serde::Serialize, what: &str) -> ExitCode {
    match serde_json::to_string_pretty(value) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("cannot encode the {what}: {e}")),
    }
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(EXIT_BAD_INPUT)
}
