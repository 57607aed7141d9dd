//! Human tables for the CLI, from the JSON the control socket returns.
//!
//! Stats are read from the JSON value field by field (a missing field shows as 0), so a
//! client can show an appliance one version apart; sessions and the policy summary are read
//! back into their types.

use super::summary::PolicySummary;
use crate::pipeline::SessionInfo;
use serde_json::Value;
use std::fmt::Write;

fn u(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn f(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("?")
}

fn items<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// `appliance stats`: ports, workers, sessions, NAT, drops.
pub fn stats(v: &Value) -> String {
    let mut out = String::new();
    let reloads = v.get("reloads").unwrap_or(&Value::Null);
    let _ = writeln!(
        out,
        "uptime {:.1} s, policy generation {}, reloads {} ok / {} failed{}",
        f(v, "uptime_secs"),
        u(v, "policy_generation"),
        u(reloads, "ok"),
        u(reloads, "failed"),
        if v.get("draining").and_then(Value::as_bool) == Some(true) {
            ", DRAINING (health probe fails)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "\n{:<10} {:<8} {:<12} {:>5} {:>14} {:>16} {:>14} {:>16} {:>11} {:>10} {:>10} {:>10} {:>10}",
        "port",
        "role",
        "driver",
        "link",
        "rx_packets",
        "rx_bytes",
        "tx_packets",
        "tx_bytes",
        "tx_dropped",
        "rx_missed",
        "rx_errors",
        "tx_errors",
        "rx_nombuf"
    );
    for p in items(v, "ports") {
        let link = match p.get("link_up").and_then(Value::as_bool) {
            Some(true) => "up",
            Some(false) => "down",
            None => "?",
        };
        let _ = writeln!(
            out,
            "{:<10} {:<8} {:<12} {:>5} {:>14} {:>16} {:>14} {:>16} {:>11} {:>10} {:>10} {:>10} {:>10}",
            s(p, "name"),
            s(p, "role"),
            s(p, "driver"),
            link,
            u(p, "rx_packets"),
            u(p, "rx_bytes"),
            u(p, "tx_packets"),
            u(p, "tx_bytes"),
            u(p, "tx_dropped"),
            u(p, "rx_missed"),
            u(p, "rx_errors"),
            u(p, "tx_errors"),
            u(p, "rx_nombuf")
        );
    }
    let _ = writeln!(
        out,
        "\n{:<7} {:>5} {:>14} {:>7} {:>11} {:>12} {:>14}",
        "worker", "lcore", "packets", "busy%", "cycles/pkt", "handoffs", "handoff_drops"
    );
    for (i, w) in items(v, "workers").iter().enumerate() {
        let (busy, idle, packets) = (u(w, "busy_cycles"), u(w, "idle_cycles"), u(w, "packets"));
        let total = busy.saturating_add(idle);
        let _ = writeln!(
            out,
            "{:<7} {:>5} {:>14} {:>6.1}% {:>11.1} {:>12} {:>14}",
            i,
            u(w, "lcore"),
            packets,
            if total == 0 {
                0.0
            } else {
                100.0 * busy as f64 / total as f64
            },
            if packets == 0 {
                0.0
            } else {
                busy as f64 / packets as f64
            },
            u(w, "handoffs"),
            u(w, "handoff_drops")
        );
    }
    let sessions = v.get("sessions").unwrap_or(&Value::Null);
    let classes = ["tcp_established", "tcp_transitory", "udp", "icmp"];
    let active: u64 = classes.iter().map(|c| u(sessions, c)).sum();
    let _ = writeln!(
        out,
        "\nsessions: {active} active ({}), {} created",
        classes
            .iter()
            .map(|c| format!("{c} {}", u(sessions, c)))
            .collect::<Vec<_>>()
            .join(", "),
        u(sessions, "created_total")
    );
    let nat = v.get("nat").unwrap_or(&Value::Null);
    let _ = writeln!(
        out,
        "nat: {} new flow(s) dropped for want of a port",
        u(nat, "exhaustion_total")
    );
    for p in items(nat, "ports_in_use") {
        let _ = writeln!(
            out,
            "  {:<16} {:<5} {:>8} port(s) in use {:>10} refused",
            s(p, "address"),
            s(p, "proto"),
            u(p, "in_use"),
            u(p, "exhausted")
        );
    }
    for t in items(v, "tunnels") {
        let carried = |way: &str| {
            let (packets, bytes) = (format!("{way}_packets"), format!("{way}_bytes"));
            format!("{} packet(s), {} bytes", u(t, &packets), u(t, &bytes))
        };
        let (port, kind) = (s(t, "port"), s(t, "kind"));
        let (taken, sent) = (carried("decapsulated"), carried("encapsulated"));
        let _ = writeln!(out, "tunnel {port} ({kind}): in {taken}; back {sent}");
        drop_lines(&mut out, t, "  dropped", "    ");
    }
    drop_lines(&mut out, v, "drops", "  ");
    out
}

/// The `drops` object of `v` (reason to count): a total line, then a line per reason that
/// has a count.
fn drop_lines(out: &mut String, v: &Value, title: &str, indent: &str) {
    let drops: Vec<(&String, u64)> = v
        .get("drops")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, n)| (k, n.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    let total: u64 = drops.iter().map(|(_, n)| n).sum();
    let _ = writeln!(out, "{title}: {total}");
    for (reason, n) in drops.iter().filter(|(_, n)| *n > 0) {
        let _ = writeln!(out, "{indent}{reason:<28} {n:>14}");
    }
}

/// `appliance sessions`: one line per session.
pub fn sessions(v: &Value) -> Result<String, String> {
    let list: Vec<SessionInfo> = serde_json::from_value(
        v.get("sessions")
            .cloned()
            .ok_or("reply has no \"sessions\"")?,
    )
    .map_err(|e| format!("bad sessions in reply: {e}"))?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<5} {:<21} {:<21} {:<21} {:<12} {:>8} {:>10} {:>12} {:>6} {:>4}",
        "proto",
        "inside",
        "outside",
        "remote",
        "state",
        "idle_s",
        "packets",
        "bytes",
        "worker",
        "gen"
    );
    for x in &list {
        let _ = writeln!(
            out,
            "{:<5} {:<21} {:<21} {:<21} {:<12} {:>8.1} {:>10} {:>12} {:>6} {:>4}",
            x.proto.to_string(),
            x.inside.to_string(),
            x.outside.to_string(),
            x.remote.to_string(),
            x.state.name(),
            x.idle_ms as f64 / 1000.0,
            x.packets,
            x.bytes,
            x.worker,
            x.generation
        );
    }
    let more = v.get("more").and_then(Value::as_bool).unwrap_or(false);
    let _ = writeln!(
        out,
        "{} session(s){}",
        list.len(),
        if more {
            format!(
                "; more match: raise --limit (now {}) or narrow --filter",
                u(v, "limit")
            )
        } else {
            String::new()
        }
    );
    Ok(out)
}

/// `appliance policy`: the running policy's summary.
pub fn policy(v: &Value) -> Result<String, String> {
    let summary: PolicySummary = serde_json::from_value(
        v.get("summary")
            .cloned()
            .ok_or("reply has no \"summary\"")?,
    )
    .map_err(|e| format!("bad policy summary in reply: {e}"))?;
    Ok(format!(
        "policy generation {} from {}\n{summary}",
        summary.generation,
        s(v, "config")
    ))
}

/// `appliance reload`: the new generation and any warnings.
pub fn reload(v: &Value) -> String {
    let mut out = format!(
        "reloaded: policy generation {} (was {})\n",
        u(v, "generation"),
        u(v, "previous")
    );
    for w in items(v, "warnings") {
        let _ = writeln!(out, "warning: {}", w.as_str().unwrap_or_default());
    }
    out
}

/// `appliance drain` and `appliance resume`: the state now, and what the probe answers.
pub fn drain(v: &Value) -> String {
    let draining = v.get("draining").and_then(Value::as_bool) == Some(true);
    let mut out = String::from(
        match (draining, v.get("changed").and_then(Value::as_bool)) {
            (true, Some(false)) => "already draining",
            (true, _) => "draining",
            (false, Some(false)) => "already serving",
            (false, _) => "serving",
        },
    );
    match v.get("probe").and_then(Value::as_str) {
        Some(probe) => {
            let answer = match (draining, probe.starts_with("http")) {
                (true, true) => "503 Service Unavailable",
                (true, false) => "a reset (connection refused)",
                (false, true) => "200 OK",
                (false, false) => "a SYN-ACK",
            };
            let _ = write!(out, ": the health probe ({probe}) answers {answer}");
        }
        None => out.push_str(
            ": no health probe is configured ([local.health_probe]), so no load balancer \
             can tell",
        ),
    }
    out.push_str("; traffic keeps flowing\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::control as testing;

    #[test]
    fn stats_table_shows_every_section() {
        let v = serde_json::to_value(testing::snapshot(2)).unwrap();
        let t = stats(&v);
        for needle in [
            "uptime 2.0 s",
            "lan",
            "wan",
            "outside",
            "net_null",
            "150.0",
            "sessions: 32 active",
            "192.0.2.2",
            "policy_deny",
            "drops: 18",
            "tunnel gwlb (geneve): in 200 packet(s), 30000 bytes; back 180 packet(s)",
            "  dropped: 20",
            "    geneve_bad_version",
        ] {
            assert!(t.contains(needle), "{needle:?} not in\n{t}");
        }
        // Garbage in: no panic, zeros out.
        assert!(stats(&serde_json::json!({"ports": 3})).contains("drops: 0"));
    }

    #[test]
    fn drain_says_what_the_probe_answers() {
        let t = drain(&serde_json::json!({
            "draining": true, "changed": true, "probe": "http GET /healthz on tcp/80"
        }));
        assert!(t.starts_with("draining: "), "{t}");
        assert!(t.contains("503"), "{t}");
        let t =
            drain(&serde_json::json!({"draining": false, "changed": false, "probe": "tcp/8080"}));
        assert!(t.starts_with("already serving"), "{t}");
        assert!(t.contains("SYN-ACK"), "{t}");
        let t = drain(&serde_json::json!({"draining": true, "changed": true}));
        assert!(t.contains("no health probe"), "{t}");
        let t = stats(&serde_json::json!({"draining": true}));
        assert!(t.contains("DRAINING"), "{t}");
    }

    #[test]
    fn sessions_table() {
        let v = serde_json::json!({
            "sessions": testing::sessions(), "more": true, "limit": 3
        });
        let t = sessions(&v).unwrap();
        assert!(t.contains("10.0.1.5:40000"), "{t}");
        assert!(t.contains("established"), "{t}");
        assert!(t.contains("3 session(s); more match"), "{t}");
        assert!(sessions(&serde_json::json!({})).is_err());
    }
}
