//! What a shard shows the control thread: its gauges, and its sessions for `appliance
//! sessions`. Both walk shard state, so they run on the worker, off the per-packet path.

use super::shard::Shard;
use crate::control::{SessionClass, SessionFilter, SessionInfo, SessionState};
use crate::flow::{Session, TcpState, TimeoutClass};
use crate::packet::IpProtocol;
use std::net::SocketAddrV4;

impl Shard {
    /// Publishes the gauges the control thread reads (sessions per class, NAT ports in
    /// use). Call about once a second.
    pub fn publish_gauges(&self) {
        self.counters.set_gauges(
            self.table.len_by_class(),
            self.snat.ports_in_use().map(|(_, _, n)| n),
            self.snat.exhausted,
        );
    }

    /// Appends to `out` up to `limit` sessions `filter` matches, as seen at `now` (seconds).
    pub fn dump(&self, now: u32, filter: &SessionFilter, limit: usize, out: &mut Vec<SessionInfo>) {
        for (_, s) in self.table.iter() {
            if out.len() >= limit {
                return;
            }
            let info = info(s, now, self.worker);
            if filter.matches(&info) {
                out.push(info);
            }
        }
    }
}

/// How the control plane shows a session.
fn info(s: &Session, now: u32, worker: u16) -> SessionInfo {
    let (inside, outside) = (s.inside(), s.outside());
    let ep = |a, p| SocketAddrV4::new(a, p);
    let class = match s.timeout_class() {
        TimeoutClass::TcpEstablished => SessionClass::TcpEstablished,
        TimeoutClass::TcpTransitory => SessionClass::TcpTransitory,
        TimeoutClass::Udp => SessionClass::Udp,
        TimeoutClass::Icmp => SessionClass::Icmp,
    };
    let state = if inside.protocol() == IpProtocol::Tcp {
        match s.tcp_state() {
            TcpState::SynSent => SessionState::SynSent,
            TcpState::SynReceived => SessionState::SynReceived,
            TcpState::Established => SessionState::Established,
            TcpState::FinWait { .. } => SessionState::FinWait,
            TcpState::CloseWait { .. } | TcpState::LastAck { .. } => SessionState::CloseWait,
            TcpState::TimeWait => SessionState::TimeWait,
            TcpState::Closed => SessionState::Closed,
        }
    } else {
        SessionState::Active
    };
    SessionInfo {
        proto: inside.protocol(),
        inside: ep(inside.src_addr(), inside.src_port()),
        outside: ep(outside.dst_addr(), outside.dst_port()),
        remote: ep(outside.src_addr(), outside.src_port()),
        class,
        state,
        idle_ms: u64::from(now.saturating_sub(s.last_seen())) * 1000,
        packets: u64::from(s.packets()),
        bytes: s.bytes(),
        worker,
        generation: u64::from(s.policy_generation()),
    }
}
