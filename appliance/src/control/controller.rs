//! [`Control`]: the control thread's state and its periodic [`Control::tick`].

use super::metrics::{Exporter, MetricsError};
use super::protocol::{Command, Response, VERSION};
use super::reload::{restart_only_changes, ReloadError};
use super::snapshot::{ReloadCounts, Snapshot};
use super::socket::{Pending, Server, SocketError};
use super::summary::PolicySummary;
use crate::config::validate;
use crate::config::Config;
use crate::pipeline::{SessionFilter, SessionInfo};
use crate::policy::{Policy, PolicyError};
use arc_swap::ArcSwap;
use serde::Serialize;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tracing::{info, warn};

/// What the control thread needs from the data path. The data path implements it; the
/// control thread calls it from [`Control::tick`], on the thread that calls `tick`.
pub trait DataplaneView {
    /// Every counter now, summed over workers. [`Snapshot::policy_generation`] and
    /// [`Snapshot::reloads`] may be left default: [`Control`] fills them in.
    fn snapshot(&self) -> Snapshot;

    /// Up to `limit` live sessions that `filter` matches ([`SessionFilter::matches`]), in any
    /// order. The data path decides how it gathers them from the workers that own them.
    fn sessions(&self, filter: &SessionFilter, limit: usize) -> Vec<SessionInfo>;
}

/// Sessions returned when a request gives no limit.
pub const DEFAULT_SESSIONS_LIMIT: usize = 100;
/// Most sessions one request may return (bounds the reply to some tens of MB).
pub const MAX_SESSIONS_LIMIT: usize = 50_000;
/// How often the Prometheus endpoint gets a new snapshot.
pub const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);
/// How often a watched configuration file is checked.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// Socket requests answered per tick; the rest wait for the next one.
const REQUESTS_PER_TICK: usize = 64;

/// Why the control thread could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The starting policy did not compile.
    #[error("{path}: {source}")]
    Policy {
        /// The configuration file.
        path: String,
        /// What the compiler said.
        source: PolicyError,
    },
    /// The control socket could not be opened (see `control.socket`).
    #[error("control.socket: {0}")]
    Socket(#[from] SocketError),
    /// The Prometheus endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The SIGHUP handler could not be installed.
    #[error("cannot install the SIGHUP handler: {0}")]
    Signal(std::io::Error),
}

/// What a successful reload did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadReport {
    /// The new policy's generation.
    pub generation: u64,
    /// The generation it replaced.
    pub previous: u64,
    /// Warnings about the new file ([`validate::warnings`]).
    pub warnings: Vec<String>,
}

/// The file identity a watch compares: modification time, size, inode.
type FileStamp = (Option<SystemTime>, u64, u64);

fn stamp(path: &Path) -> Option<FileStamp> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.modified().ok(), m.len(), m.ino()))
}

/// The control thread: the running configuration and policy, the control socket, the
/// Prometheus endpoint, reloads.
///
/// Wiring, from the data path's side:
/// 1. `Control::new(path, config)` after loading the file (the policy is compiled here, as
///    generation 1; the socket and endpoint of `[control]` are opened);
///    `control.reload_on_sighup()`;
/// 2. every worker gets `control.policy()` (an `Arc<ArcSwap<Policy>>`) and calls `.load()`
///    once per burst;
/// 3. the main lcore's loop calls `control.tick(&view)` about every 20 ms, with a
///    [`DataplaneView`] over the workers' counters and sessions.
///
/// Every reload happens inside `tick` (or a direct [`Control::reload`]) on that one thread,
/// so reloads are serialised and generations are never skipped or reused.
#[derive(Debug)]
pub struct Control {
    config_path: PathBuf,
    config: Config,
    policy: Arc<ArcSwap<Policy>>,
    server: Option<Server>,
    requests: Option<Receiver<Pending>>,
    exporter: Option<Exporter>,
    reload_flag: Arc<AtomicBool>,
    draining: Arc<AtomicBool>,
    sighup: Option<signal_hook::SigId>,
    stamp: Option<FileStamp>,
    last_watch: Instant,
    last_publish: Option<Instant>,
    reloads: ReloadCounts,
    started: Instant,
}

impl Control {
    /// Compiles `config` (read from `config_path`) as policy generation 1, and opens the
    /// control socket and the Prometheus endpoint that its `[control]` section names.
    pub fn new(config_path: impl Into<PathBuf>, config: Config) -> Result<Control, ControlError> {
        let config_path = config_path.into();
        let stamp = stamp(&config_path);
        let policy = Policy::compile(&config, 1).map_err(|source| ControlError::Policy {
            path: config_path.display().to_string(),
            source,
        })?;
        let (server, requests) = match config.control.socket_path() {
            Some(path) => {
                let (server, rx) = Server::start(path)?;
                info!(socket = %path.display(), "control socket listening");
                (Some(server), Some(rx))
            }
            None => (None, None),
        };
        let exporter = config
            .control
            .metrics_address()
            .map(Exporter::start)
            .transpose()?;
        Ok(Control {
            config_path,
            config,
            policy: Arc::new(ArcSwap::from_pointee(policy)),
            server,
            requests,
            exporter,
            reload_flag: Arc::new(AtomicBool::new(false)),
            draining: Arc::new(AtomicBool::new(false)),
            sighup: None,
            stamp,
            last_watch: Instant::now(),
            last_publish: None,
            reloads: ReloadCounts::default(),
            started: Instant::now(),
        })
    }

    /// The published policy, for the workers: each calls `.load()` once per burst.
    pub fn policy(&self) -> Arc<ArcSwap<Policy>> {
        Arc::clone(&self.policy)
    }

    /// The policy in force.
    pub fn current(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    /// The generation of the policy in force.
    pub fn generation(&self) -> u64 {
        self.policy.load().generation
    }

    /// The configuration in force (the last one loaded successfully).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The configuration file reloads read.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Where the control socket listens, if it is on.
    pub fn socket_path(&self) -> Option<&Path> {
        self.server.as_ref().map(Server::path)
    }

    /// Where the Prometheus endpoint listens, if it is on.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.exporter.as_ref().map(Exporter::address)
    }

    /// Reloads so far.
    pub fn reloads(&self) -> ReloadCounts {
        self.reloads
    }

    /// A flag that asks for a reload at the next tick when set (what SIGHUP sets).
    pub fn reload_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.reload_flag)
    }

    /// Whether a reload has been asked for and not yet done.
    pub fn reload_requested(&self) -> bool {
        self.reload_flag.load(Ordering::SeqCst)
    }

    /// The drain flag, for the workers: each reads it once per burst (a relaxed load) into
    /// its [`Env::health`](crate::pipeline::Env::health).
    pub fn draining_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.draining)
    }

    /// Whether the appliance drains.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Starts (`on`) or ends a drain, saying `why` in the log; returns whether the state
    /// changed. Draining only changes what the health probe answers: sessions, new flows and
    /// the policy are untouched. It lasts until [`Control::set_draining`] turns it off or
    /// the process ends (a restart serves again).
    pub fn set_draining(&mut self, on: bool, why: &str) -> bool {
        let changed = self.draining.swap(on, Ordering::SeqCst) != on;
        if changed {
            let probe = self.probe_description();
            if on {
                info!(
                    why,
                    probe = probe.as_deref().unwrap_or("none"),
                    "draining: the health probe fails, traffic keeps flowing"
                );
                if probe.is_none() {
                    warn!("draining without [local.health_probe]: no load balancer can tell");
                }
            } else {
                info!(
                    why,
                    probe = probe.as_deref().unwrap_or("none"),
                    "serving: the health probe passes again"
                );
            }
        }
        changed
    }

    /// The health probe in force, in words (`http GET /healthz on tcp/80`), if any.
    fn probe_description(&self) -> Option<String> {
        let policy = self.policy.load();
        policy
            .local
            .health_probe
            .as_ref()
            .map(|h| match &h.http_path {
                Some(path) => format!(
                    "http GET {} on tcp/{}",
                    String::from_utf8_lossy(path),
                    h.port
                ),
                None => format!("tcp/{}", h.port),
            })
    }

    /// Makes SIGHUP ask for a reload (done at the next tick). Undone when `self` drops.
    pub fn reload_on_sighup(&mut self) -> Result<(), ControlError> {
        if self.sighup.is_none() {
            let id = signal_hook::flag::register(
                signal_hook::consts::SIGHUP,
                Arc::clone(&self.reload_flag),
            )
            .map_err(ControlError::Signal)?;
            self.sighup = Some(id);
        }
        Ok(())
    }

    /// Re-reads the configuration file: parse, validate, refuse restart-only changes,
    /// compile as the next generation and publish. On error nothing changes but the failed
    /// count. Logged either way.
    pub fn reload(&mut self) -> Result<ReloadReport, ReloadError> {
        let result = self.try_reload();
        match &result {
            Ok(r) => {
                self.reloads.ok += 1;
                info!(
                    config = %self.config_path.display(),
                    generation = r.generation,
                    warnings = r.warnings.len(),
                    "policy reloaded"
                );
                for w in &r.warnings {
                    warn!(config = %self.config_path.display(), "{w}");
                }
            }
            Err(e) => {
                self.reloads.failed += 1;
                warn!(config = %self.config_path.display(), error = %e, "reload refused");
            }
        }
        result
    }

    fn try_reload(&mut self) -> Result<ReloadReport, ReloadError> {
        let generation = self.generation();
        // Take the file's stamp before reading it: an edit racing the read is seen next time.
        self.stamp = stamp(&self.config_path);
        let config = Config::load(&self.config_path)
            .map_err(|source| ReloadError::Config { generation, source })?;
        let changes = restart_only_changes(&self.config, &config);
        if !changes.is_empty() {
            return Err(ReloadError::NeedsRestart {
                generation,
                changes,
            });
        }
        let policy = Policy::compile(&config, generation + 1)
            .map_err(|source| ReloadError::Policy { generation, source })?;
        // The SNAT pool (explicit, or the outside ports' addresses when `nat.addresses` is
        // empty) is split between the workers' port slices at start.
        let running = self.policy.load();
        if policy.snat.addresses != running.snat.addresses {
            let show = |a: &[std::net::Ipv4Addr]| {
                a.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(ReloadError::NeedsRestart {
                generation,
                changes: vec![super::reload::RestartChange {
                    field: "nat.addresses (the SNAT pool)".into(),
                    running: show(&running.snat.addresses),
                    file: show(&policy.snat.addresses),
                }],
            });
        }
        let warnings = validate::warnings(&config)
            .iter()
            .map(ToString::to_string)
            .collect();
        self.policy.store(Arc::new(policy));
        self.config = config;
        Ok(ReloadReport {
            generation: generation + 1,
            previous: generation,
            warnings,
        })
    }

    /// One round of the control loop; call it about every 20 ms. Reloads if SIGHUP came or
    /// the watched file changed, answers waiting socket requests, and publishes metrics
    /// once a second.
    pub fn tick(&mut self, view: &dyn DataplaneView) {
        if self.reload_flag.swap(false, Ordering::SeqCst) {
            info!("reload asked by signal");
            let _ = self.reload();
        }
        self.watch();
        self.serve(view);
        if self.exporter.is_some()
            && self
                .last_publish
                .is_none_or(|t| t.elapsed() >= PUBLISH_INTERVAL)
        {
            self.publish(view);
        }
    }

    fn watch(&mut self) {
        if !self.config.control.watch_config || self.last_watch.elapsed() < WATCH_INTERVAL {
            return;
        }
        self.last_watch = Instant::now();
        // A file missing for a moment (an editor replacing it) is not a change yet.
        let Some(now) = stamp(&self.config_path) else {
            return;
        };
        if self.stamp != Some(now) {
            info!(config = %self.config_path.display(), "configuration file changed");
            let _ = self.reload();
        }
    }

    fn serve(&mut self, view: &dyn DataplaneView) {
        let Some(rx) = &self.requests else {
            return;
        };
        let mut batch = Vec::new();
        while batch.len() < REQUESTS_PER_TICK {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        for (request, reply) in batch {
            let response = self.handle(&request.command, view);
            // The client may have given up; nothing to do then.
            let _ = reply.send(response);
        }
    }

    /// Answers one command (what the control socket does with each request).
    pub fn handle(&mut self, command: &Command, view: &dyn DataplaneView) -> Response {
        match command {
            Command::Version => Response::ok(serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "protocol": VERSION,
                "uptime_secs": self.started.elapsed().as_secs_f64(),
                "generation": self.generation(),
                "draining": self.draining(),
            })),
            Command::Stats => to_response(&self.snapshot(view)),
            Command::Sessions { filter, limit } => {
                let text = filter.as_deref().unwrap_or("");
                let filter = match SessionFilter::parse(text) {
                    Ok(f) => f,
                    Err(e) => return Response::error(e.to_string()),
                };
                let limit = limit.unwrap_or(DEFAULT_SESSIONS_LIMIT);
                if limit == 0 || limit > MAX_SESSIONS_LIMIT {
                    return Response::error(format!(
                        "limit {limit}: must be between 1 and {MAX_SESSIONS_LIMIT}"
                    ));
                }
                let mut sessions = view.sessions(&filter, limit + 1);
                let more = sessions.len() > limit;
                sessions.truncate(limit);
                to_response(&serde_json::json!({
                    "filter": filter.to_string(),
                    "limit": limit,
                    "more": more,
                    "sessions": sessions,
                }))
            }
            Command::Reload => match self.reload() {
                Ok(report) => to_response(&report),
                Err(e) => Response::error(e.to_string()),
            },
            Command::Drain | Command::Resume => {
                let on = *command == Command::Drain;
                let changed = self.set_draining(on, "asked on the control socket");
                Response::ok(serde_json::json!({
                    "draining": on,
                    "changed": changed,
                    "probe": self.probe_description(),
                }))
            }
            Command::Policy => {
                let summary = PolicySummary::new(&self.config, &self.current());
                to_response(&serde_json::json!({
                    "config": self.config_path.display().to_string(),
                    "summary": summary,
                }))
            }
        }
    }

    /// The data path's snapshot with the control thread's own fields filled in.
    pub fn snapshot(&self, view: &dyn DataplaneView) -> Snapshot {
        let mut s = view.snapshot();
        s.policy_generation = self.generation();
        s.reloads = self.reloads;
        s.draining = self.draining();
        s
    }

    /// Takes a snapshot and publishes it to the Prometheus endpoint now (a no-op without
    /// one). `tick` does this once a second.
    pub fn publish(&mut self, view: &dyn DataplaneView) {
        if let Some(exporter) = &self.exporter {
            let s = self.snapshot(view);
            exporter.publish(&s);
            self.last_publish = Some(Instant::now());
        }
    }

    /// What a Prometheus scrape would get now (`None` without an endpoint).
    pub fn render_metrics(&self) -> Option<String> {
        self.exporter.as_ref().map(Exporter::render)
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        if let Some(id) = self.sighup.take() {
            signal_hook::low_level::unregister(id);
        }
    }
}

fn to_response(v: &impl Serialize) -> Response {
    match serde_json::to_value(v) {
        Ok(v) => Response::ok(v),
        Err(e) => Response::error(format!("reply could not be encoded: {e}")),
    }
}
