//! A fake data path for the control plane's tests: a [`FakeView`] serving a settable
//! snapshot and a fixed list of sessions on the topology, and [`Background`], a control loop
//! on a thread of its own.

use super::PUBLIC;
use crate::control::snapshot::{
    NatPortUsage, NatSnapshot, PortSnapshot, SessionCounts, Snapshot, TunnelSnapshot,
    WorkerSnapshot,
};
use crate::control::{Control, DataplaneView};
use crate::flow::TimeoutClass;
use crate::packet::IpProtocol;
use crate::pipeline::{SessionFilter, SessionInfo, SessionState};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A data path that is not there: what [`FakeView::set`] stored, and fixed sessions.
#[derive(Debug, Default)]
pub struct FakeView {
    snapshot: Mutex<Snapshot>,
    sessions: Vec<SessionInfo>,
}

impl FakeView {
    /// A view reporting `snapshot` and holding `sessions`.
    pub fn new(snapshot: Snapshot, sessions: Vec<SessionInfo>) -> FakeView {
        FakeView {
            snapshot: Mutex::new(snapshot),
            sessions,
        }
    }

    /// Replaces the snapshot it reports.
    pub fn set(&self, snapshot: Snapshot) {
        if let Ok(mut s) = self.snapshot.lock() {
            *s = snapshot;
        }
    }
}

impl DataplaneView for FakeView {
    fn snapshot(&self) -> Snapshot {
        self.snapshot.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn sessions(&self, filter: &SessionFilter, limit: usize) -> Vec<SessionInfo> {
        self.sessions
            .iter()
            .filter(|s| filter.matches(s))
            .take(limit)
            .copied()
            .collect()
    }
}

/// A plausible two-port, two-worker snapshot whose every counter grows with `n`.
pub fn snapshot(n: u64) -> Snapshot {
    let port = |name: &str, role, k: u64| PortSnapshot {
        name: name.to_string(),
        role,
        driver: "net_null".to_string(),
        rx_packets: 1000 * n * k,
        rx_bytes: 64_000 * n * k,
        tx_packets: 990 * n * k,
        tx_bytes: 63_360 * n * k,
        tx_dropped: n,
        rx_missed: 2 * n,
        rx_errors: 0,
        tx_errors: 0,
        rx_nombuf: 0,
        link_up: true,
    };
    let worker = |lcore| WorkerSnapshot {
        lcore,
        packets: 1000 * n,
        busy_cycles: 150_000 * n,
        idle_cycles: 1_000_000 * n,
        tsc_hz: 2_000_000_000,
        handoffs: 10 * n,
        handoff_drops: n / 2,
    };
    Snapshot {
        uptime_secs: n as f64,
        policy_generation: 0,
        ports: vec![port("lan", "inside", 1), port("wan", "outside", 2)],
        workers: vec![worker(1), worker(2)],
        drops: vec![
            ("ipv4_bad_checksum", n),
            ("policy_deny", 3 * n),
            ("no_forward", 5 * n),
        ],
        sessions: SessionCounts {
            tcp_established: 10 * n,
            tcp_transitory: n,
            udp: 4 * n,
            icmp: n,
            created_total: 20 * n,
        },
        nat: NatSnapshot {
            ports_in_use: vec![
                NatPortUsage {
                    address: PUBLIC,
                    proto: "tcp",
                    in_use: 11 * n,
                    exhausted: 0,
                },
                NatPortUsage {
                    address: PUBLIC,
                    proto: "udp",
                    in_use: 4 * n,
                    exhausted: n,
                },
            ],
            exhaustion_total: n,
        },
        reloads: Default::default(),
        draining: false,
        tunnels: vec![TunnelSnapshot {
            port: "gwlb".to_string(),
            kind: "geneve",
            decapsulated_packets: 100 * n,
            decapsulated_bytes: 15_000 * n,
            encapsulated_packets: 90 * n,
            encapsulated_bytes: 13_500 * n,
            drops: vec![("geneve_bad_version", n), ("ingress_denied", 9 * n)],
        }],
    }
}

/// Three sessions: TCP established, UDP, ICMP, from two inside hosts.
pub fn sessions() -> Vec<SessionInfo> {
    let ep = |a: [u8; 4], p| SocketAddrV4::new(Ipv4Addr::from(a), p);
    let tcp = SessionInfo {
        proto: IpProtocol::TCP,
        inside: ep([10, 0, 1, 5], 40000),
        outside: SocketAddrV4::new(PUBLIC, 40000),
        remote: ep([198, 51, 100, 7], 443),
        class: TimeoutClass::TcpEstablished,
        state: SessionState::Established,
        idle_ms: 40,
        packets: 22,
        bytes: 16_200,
        worker: 0,
        generation: 1,
    };
    vec![
        tcp,
        SessionInfo {
            proto: IpProtocol::UDP,
            inside: ep([10, 0, 1, 6], 5353),
            outside: SocketAddrV4::new(PUBLIC, 31000),
            remote: ep([192, 0, 2, 53], 53),
            class: TimeoutClass::Udp,
            state: SessionState::Active,
            worker: 1,
            ..tcp
        },
        SessionInfo {
            proto: IpProtocol::ICMP,
            inside: ep([10, 0, 1, 5], 7),
            outside: SocketAddrV4::new(PUBLIC, 1031),
            remote: ep([192, 0, 2, 1], 7),
            class: TimeoutClass::Icmp,
            state: SessionState::Active,
            ..tcp
        },
    ]
}

/// A [`Control`] ticking every 5 ms on a thread of its own, with a view, until dropped or
/// [`Background::stop`]ped.
#[derive(Debug)]
pub struct Background {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Control>>,
}

impl Background {
    /// Moves `control` to a new thread that ticks it with `view`.
    pub fn start(mut control: Control, view: Arc<dyn DataplaneView + Send + Sync>) -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                control.tick(view.as_ref());
                std::thread::sleep(Duration::from_millis(5));
            }
            control
        });
        Background {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the loop and gives the `Control` back (`None` if its thread panicked).
    pub fn stop(mut self) -> Option<Control> {
        self.halt()
    }

    fn halt(&mut self) -> Option<Control> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}
