//! The Prometheus endpoint: every [`Snapshot`] published through the `metrics` facade into
//! a Prometheus recorder, served as text over HTTP by `metrics-exporter-prometheus`.
//!
//! The recorder is this exporter's own, not the process-wide one: publishing runs the facade
//! macros under [`metrics::with_local_recorder`], so several exporters can live in one
//! process (tests) and nothing else in the appliance can add stray series. Every value comes
//! from a snapshot: counters are set to the snapshot's running totals
//! ([`metrics::Counter::absolute`]), gauges to its current values. The names, labels and
//! meanings are [`METRICS`] (and README.md, "Metrics").
//!
//! The HTTP listener runs on one tokio worker thread owned by the [`Exporter`]; dropping the
//! exporter stops it and closes the port.

use super::snapshot::Snapshot;
use metrics::{counter, describe_counter, describe_gauge, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use std::fmt;
use std::net::SocketAddr;

/// What a metric is, for [`METRICS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A running total (Prometheus `counter`).
    Counter,
    /// A current value (Prometheus `gauge`).
    Gauge,
}

/// Every metric the exporter serves: name, kind, labels, help text.
pub const METRICS: &[(&str, Kind, &[&str], &str)] = &[
    ("nva_uptime_seconds", Kind::Gauge, &[], "Seconds since the data path started."),
    ("nva_policy_generation", Kind::Gauge, &[], "Generation of the policy in force (1 at start, +1 per successful reload)."),
    ("nva_reloads_total", Kind::Counter, &["result"], "Configuration reloads, by result: ok (new policy published) or failed (refused, old policy kept)."),
    ("nva_draining", Kind::Gauge, &[], "1 while the appliance drains (its health probe fails, traffic still flows), else 0."),
    ("nva_port_rx_packets_total", Kind::Counter, &["port"], "Packets received on the port."),
    ("nva_port_rx_bytes_total", Kind::Counter, &["port"], "Bytes received on the port."),
    ("nva_port_tx_packets_total", Kind::Counter, &["port"], "Packets sent on the port."),
    ("nva_port_tx_bytes_total", Kind::Counter, &["port"], "Bytes sent on the port."),
    ("nva_port_tx_dropped_total", Kind::Counter, &["port"], "Packets freed because the port's tx ring was full."),
    ("nva_port_rx_missed_total", Kind::Counter, &["port"], "Driver: packets the NIC dropped for lack of rx descriptors (the workers fell behind)."),
    ("nva_port_rx_errors_total", Kind::Counter, &["port"], "Driver: erroneous packets received."),
    ("nva_port_tx_errors_total", Kind::Counter, &["port"], "Driver: failed transmissions."),
    ("nva_port_rx_nombuf_total", Kind::Counter, &["port"], "Driver: rx mbuf allocation failures (the packet pool ran dry)."),
    ("nva_link_up", Kind::Gauge, &["port"], "1 if the port's link is up, else 0."),
    ("nva_drops_total", Kind::Counter, &["reason"], "Packets dropped by the data path, by reason."),
    ("nva_sessions", Kind::Gauge, &["class"], "Live sessions by timeout class: tcp_established, tcp_transitory, udp, icmp."),
    ("nva_sessions_created_total", Kind::Counter, &[], "Sessions created since start."),
    ("nva_worker_packets_total", Kind::Counter, &["worker"], "Packets the worker processed."),
    ("nva_worker_busy_cycles_total", Kind::Counter, &["worker"], "TSC cycles the worker spent in loop iterations that moved packets."),
    ("nva_worker_idle_cycles_total", Kind::Counter, &["worker"], "TSC cycles the worker spent in iterations that found nothing."),
    ("nva_worker_cycles_per_packet", Kind::Gauge, &["worker"], "Busy cycles per packet since start (busy_cycles / packets)."),
    ("nva_worker_tsc_hz", Kind::Gauge, &["worker"], "TSC ticks per second on the worker's core, to turn cycles into seconds."),
    ("nva_handoffs_total", Kind::Counter, &["worker"], "Packets the worker handed to the worker that owns their flow."),
    ("nva_handoff_drops_total", Kind::Counter, &["worker"], "Packets the worker dropped because the owner's handoff ring was full."),
    ("nva_nat_ports_in_use", Kind::Gauge, &["address", "proto"], "SNAT ports (ICMP: identifiers) in use per public address and protocol."),
    ("nva_nat_port_exhaustion_total", Kind::Counter, &[], "New flows dropped because no SNAT port was free."),
    ("nva_tunnel_decapsulated_packets_total", Kind::Counter, &["port"], "Packets of a gwlb port's tunnel taken apart."),
    ("nva_tunnel_decapsulated_bytes_total", Kind::Counter, &["port"], "Bytes of the packets taken apart (whole frames)."),
    ("nva_tunnel_encapsulated_packets_total", Kind::Counter, &["port"], "Packets sent back into a gwlb port's tunnel."),
    ("nva_tunnel_encapsulated_bytes_total", Kind::Counter, &["port"], "Bytes of the packets sent back (whole frames)."),
    ("nva_tunnel_drops_total", Kind::Counter, &["port", "reason"], "Packets a gwlb port received and dropped, by reason."),
];

/// Why the Prometheus endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The runtime thread could not be created.
    #[error("control.metrics = \"{address}\": cannot start the metrics thread: {source}")]
    Runtime {
        /// The configured address.
        address: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The listener could not be bound or built.
    #[error("control.metrics = \"{address}\": {why} (is another process listening there?)")]
    Listen {
        /// The configured address.
        address: SocketAddr,
        /// The exporter's message.
        why: String,
    },
}

/// A running Prometheus endpoint.
pub struct Exporter {
    address: SocketAddr,
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Runs the HTTP listener; taken on drop to stop it.
    runtime: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for Exporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exporter")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Exporter {
    /// Binds `address` and starts serving. Nothing is served but the metric descriptions
    /// until the first [`Exporter::publish`].
    pub fn start(address: SocketAddr) -> Result<Exporter, MetricsError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("metrics-http")
            .enable_all()
            .build()
            .map_err(|source| MetricsError::Runtime { address, source })?;
        let (recorder, exporter) = {
            let _in_runtime = runtime.enter();
            PrometheusBuilder::new()
                .with_http_listener(address)
                .build()
                .map_err(|e| MetricsError::Listen {
                    address,
                    why: e.to_string(),
                })?
        };
        runtime.spawn(async move {
            if let Err(e) = exporter.await {
                tracing::error!(error = ?e, "Prometheus endpoint stopped");
            }
        });
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            for &(name, kind, _, help) in METRICS {
                match kind {
                    Kind::Counter => describe_counter!(name, help),
                    Kind::Gauge => describe_gauge!(name, help),
                }
            }
        });
        tracing::info!(%address, "Prometheus endpoint listening");
        Ok(Exporter {
            address,
            recorder,
            handle,
            runtime: Some(runtime),
        })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Sets every metric from `s`.
    pub fn publish(&self, s: &Snapshot) {
        metrics::with_local_recorder(&self.recorder, || record(s));
    }

    /// The text a scrape gets now.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        // Close the port now; do not wait for a scrape in progress.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Publishes `s` through the facade to whatever recorder is in force.
fn record(s: &Snapshot) {
    gauge!("nva_uptime_seconds").set(s.uptime_secs);
    gauge!("nva_policy_generation").set(s.policy_generation as f64);
    counter!("nva_reloads_total", "result" => "ok").absolute(s.reloads.ok);
    counter!("nva_reloads_total", "result" => "failed").absolute(s.reloads.failed);
    gauge!("nva_draining").set(if s.draining { 1.0 } else { 0.0 });
    for p in &s.ports {
        let port = p.name.clone();
        for (name, v) in [
            ("nva_port_rx_packets_total", p.rx_packets),
            ("nva_port_rx_bytes_total", p.rx_bytes),
            ("nva_port_tx_packets_total", p.tx_packets),
            ("nva_port_tx_bytes_total", p.tx_bytes),
            ("nva_port_tx_dropped_total", p.tx_dropped),
            ("nva_port_rx_missed_total", p.rx_missed),
            ("nva_port_rx_errors_total", p.rx_errors),
            ("nva_port_tx_errors_total", p.tx_errors),
            ("nva_port_rx_nombuf_total", p.rx_nombuf),
        ] {
            counter!(name, "port" => port.clone()).absolute(v);
        }
        gauge!("nva_link_up", "port" => port).set(if p.link_up { 1.0 } else { 0.0 });
    }
    for &(reason, v) in &s.drops {
        counter!("nva_drops_total", "reason" => reason).absolute(v);
    }
    for (class, v) in s.sessions.by_class() {
        gauge!("nva_sessions", "class" => class).set(v as f64);
    }
    counter!("nva_sessions_created_total").absolute(s.sessions.created_total);
    for (i, w) in s.workers.iter().enumerate() {
        let worker = i.to_string();
        for (name, v) in [
            ("nva_worker_packets_total", w.packets),
            ("nva_worker_busy_cycles_total", w.busy_cycles),
            ("nva_worker_idle_cycles_total", w.idle_cycles),
            ("nva_handoffs_total", w.handoffs),
            ("nva_handoff_drops_total", w.handoff_drops),
        ] {
            counter!(name, "worker" => worker.clone()).absolute(v);
        }
        gauge!("nva_worker_cycles_per_packet", "worker" => worker.clone())
            .set(w.cycles_per_packet());
        gauge!("nva_worker_tsc_hz", "worker" => worker).set(w.tsc_hz as f64);
    }
    for u in &s.nat.ports_in_use {
        gauge!("nva_nat_ports_in_use", "address" => u.address.to_string(), "proto" => u.proto)
            .set(u.in_use as f64);
    }
    counter!("nva_nat_port_exhaustion_total").absolute(s.nat.exhaustion_total);
    for t in &s.tunnels {
        for (name, v) in [
            (
                "nva_tunnel_decapsulated_packets_total",
                t.decapsulated_packets,
            ),
            ("nva_tunnel_decapsulated_bytes_total", t.decapsulated_bytes),
            (
                "nva_tunnel_encapsulated_packets_total",
                t.encapsulated_packets,
            ),
            ("nva_tunnel_encapsulated_bytes_total", t.encapsulated_bytes),
        ] {
            counter!(name, "port" => t.port.clone()).absolute(v);
        }
        for &(reason, v) in &t.drops {
            counter!("nva_tunnel_drops_total", "port" => t.port.clone(), "reason" => reason)
                .absolute(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_published_name_is_listed_and_described() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let s = crate::testing::control::snapshot(1);
        metrics::with_local_recorder(&recorder, || record(&s));
        let text = recorder.handle().render();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            assert!(
                METRICS.iter().any(|m| m.0 == name),
                "{name} is published but not in METRICS"
            );
        }
        for (name, ..) in METRICS {
            assert!(
                text.contains(name),
                "{name} is in METRICS but not published"
            );
        }
    }

    #[test]
    fn readme_documents_every_metric() {
        let readme = include_str!("../../../README.md");
        let section = readme
            .split("## Metrics")
            .nth(1)
            .expect("README.md has a \"## Metrics\" section");
        for (name, _, labels, _) in METRICS {
            assert!(
                section.contains(name),
                "README.md, Metrics: {name} is missing"
            );
            for l in labels.iter() {
                assert!(
                    section.contains(l),
                    "README.md, Metrics: label {l} of {name}"
                );
            }
        }
    }
}
