//! End-to-end tests: real programs (curl, nginx, dig, dnsmasq, ping, iperf3, nmap, tcpdump,
//! traceroute) in network namespaces, through the real `appliance` binary.
//!
//! ```text
//!   c1 10.0.1.10 --+
//!                  +-- bridge --- lan [fw] wan --- 192.0.2.1 router --+-- 203.0.113.10  srv
//!   c2 10.0.1.11 --+              10.0.1.1  192.0.2.2                  +-- 198.51.100.10 srv
//! ```
//! `NVA_E2E_MODE=kernel|appliance|both` (default appliance): what plays the appliance in `fw`
//! (see `testbed/mod.rs`). Root only; each test builds its own testbed, one at a time, and
//! removes it even when it fails. Figures are printed as `FIGURE [mode] test: ...` lines
//! (`cargo test --test e2e -- --nocapture`).

mod common;
mod testbed;

use std::time::{Duration, Instant};
use testbed::*;

/// Runs `body` on a fresh, ready testbed in each mode asked for.
fn each_mode(test: &str, options: Options, body: impl Fn(&mut Testbed)) {
    if !can_run(test) {
        return;
    }
    for mode in modes() {
        let mut tb = Testbed::up(mode, test, options.clone());
        tb.wait_ready();
        body(&mut tb);
    }
}

fn field(line: &str, i: usize) -> &str {
    line.split_whitespace().nth(i).unwrap_or("")
}

// ---- the pieces of the show, shared by the tests and the two-worker run ----

/// c1 downloads the 16 MiB file from the server: intact, and the server saw the public
/// address. Returns (seconds, Mbit/s).
fn download(tb: &Testbed, test: &str) -> (f64, f64) {
    let file = tb.run.join("c1-big.bin");
    let before = tb.lines_in("srv-access.log");
    let out = tb.ok(
        "c1",
        &format!(
            "curl -sS --max-time 60 -o {} -w '%{{time_total}} %{{size_download}}' http://{SRV1}/big.bin",
            file.display()
        ),
        70,
    );
    let secs: f64 = field(&out, 0).parse().expect("curl time_total");
    let size: f64 = field(&out, 1).parse().expect("curl size_download");
    let want = tb.read("www-srv/big.bin.sha256");
    let got = common::sh(&format!("sha256sum {}", file.display()));
    assert_eq!(
        field(&got, 0),
        field(&want, 0),
        "[{}] {test}: the downloaded file differs from the server's ({size} bytes received)",
        tb.mode
    );
    let log = tb.log_after("srv-access.log", before, 1);
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("GET /big.bin"))
        .unwrap_or_else(|| panic!("[{}] {test}: no GET /big.bin in the access log", tb.mode));
    assert_eq!(
        field(line, 0),
        PUBLIC,
        "[{}] {test}: the server saw client {} instead of the public address {PUBLIC}: {line}",
        tb.mode,
        field(line, 0)
    );
    let _ = std::fs::remove_file(&file);
    (secs, size * 8.0 / secs / 1e6)
}

/// A DNS query from each inside host, answered through NAT. Returns dig's query time (ms).
fn dns(tb: &Testbed, test: &str) -> u64 {
    let mut ms = 0;
    for (host, server, name, want) in [
        ("c1", SRV1, "www.nva.test", SRV1),
        ("c2", SRV2, "srv2.nva.test", SRV2),
    ] {
        let out = tb.ok(
            host,
            &format!("dig +time=2 +tries=2 @{server} {name} A"),
            15,
        );
        let answer = out
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("[{}] {test}: no answer for {name}:\n{out}", tb.mode));
        assert_eq!(field(answer, 4), want, "{answer}");
        assert!(
            out.contains(" aa "),
            "the answer is not authoritative:\n{out}"
        );
        if host == "c1" {
            ms = out
                .lines()
                .find_map(|l| l.strip_prefix(";; Query time: "))
                .and_then(|v| field(v, 0).parse().ok())
                .unwrap_or(0);
        }
        let log = tb.read("dnsmasq.log");
        let q = log
            .lines()
            .rev()
            .find(|l| l.contains(&format!("[A] {name} from ")))
            .unwrap_or_else(|| panic!("[{}] {test}: dnsmasq logged no query for {name}", tb.mode));
        assert!(
            q.ends_with(&format!("from {PUBLIC}")),
            "[{}] {test}: the DNS server saw the query from another address than {PUBLIC}: {q}",
            tb.mode
        );
    }
    ms
}

/// Pings out and back from both inside hosts. Returns c1's average RTT (ms).
fn ping(tb: &Testbed, test: &str) -> f64 {
    let mut avg = 0.0;
    for (host, dst) in [("c1", SRV1), ("c2", SRV2)] {
        let out = tb.ok(host, &format!("ping -c 5 -i 0.2 -W 2 {dst}"), 15);
        assert!(
            out.contains(" 0% packet loss"),
            "[{}] {test}: ping {host} -> {dst} lost packets:\n{out}",
            tb.mode
        );
        if host == "c1" {
            // rtt min/avg/max/mdev = 0.190/0.293/0.397/0.103 ms
            avg = out
                .lines()
                .find_map(|l| l.split(" = ").nth(1))
                .and_then(|v| v.split('/').nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
        }
    }
    avg
}

/// An outside host reaches the web server on c2 through the port forward; the server sees
/// the outside client's own address.
fn port_forward(tb: &Testbed, test: &str) {
    let before = tb.lines_in("c2-access.log");
    let body = tb.ok(
        "srv",
        &format!("curl -sS --max-time 10 http://{PUBLIC}:{FORWARD_PORT}/"),
        15,
    );
    assert!(
        body.contains("port forward target"),
        "[{}] {test}: {PUBLIC}:{FORWARD_PORT} did not reach c2's web server: {body}",
        tb.mode
    );
    let log = tb.log_after("c2-access.log", before, 1);
    let last = log.lines().last().unwrap_or("");
    assert_eq!(
        field(last, 0),
        SRV1,
        "[{}] {test}: c2's server should see the outside client {SRV1}: {last}",
        tb.mode
    );
}

/// Parsed `iperf3 -J`: (received bit/s, retransmits or lost %, bytes per interval).
fn iperf3(tb: &Testbed, test: &str, args: &str, secs: u64) -> serde_json::Value {
    let out = tb.ok(
        "c1",
        &format!("iperf3 -c {SRV1} -p 5201 -J -t {secs} {args}"),
        secs + 20,
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| {
        panic!(
            "[{}] {test}: iperf3 -J output is not JSON ({e}): {out}",
            tb.mode
        )
    });
    let intervals = v["intervals"].as_array().expect("iperf3 intervals");
    assert!(
        intervals.len() as u64 >= secs,
        "[{}] {test}: iperf3 ran {} intervals of {secs}",
        tb.mode,
        intervals.len()
    );
    for (i, iv) in intervals.iter().enumerate() {
        assert!(
            iv["sum"]["bytes"].as_f64().unwrap_or(0.0) > 0.0,
            "[{}] {test}: iperf3 {args} stalled: nothing sent in interval {i}",
            tb.mode
        );
    }
    let log = tb.read("iperf3-5201.log");
    let from = log
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("Accepted connection from "))
        .unwrap_or("");
    // Behind a load balancer nothing is translated: the server sees c1 itself.
    let want = match tb.options.topology {
        Topology::Gwlb | Topology::Vxlan => C1,
        Topology::Single | Topology::Ecmp => PUBLIC,
    };
    assert!(
        from.starts_with(&format!("{want},")),
        "[{}] {test}: iperf3 server saw the client as {from:?}, not {want}",
        tb.mode
    );
    v
}

fn iperf3_tcp(tb: &Testbed, test: &str, secs: u64) -> (f64, u64) {
    let v = iperf3(tb, test, "", secs);
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    let retr = v["end"]["sum_sent"]["retransmits"].as_u64().unwrap_or(0);
    assert!(bps > 0.0, "[{}] {test}: iperf3 TCP moved nothing", tb.mode);
    (bps / 1e6, retr)
}

// ---- the tests ----

/// Egress: a 16 MiB HTTP download through SNAT, intact, seen by the server from the public
/// address; the egress deny rule (tcp/25) holds while other ports are reached.
#[test]
fn egress_http_download_through_snat() {
    let test = "egress_http_download_through_snat";
    each_mode(test, Options::default(), |tb| {
        let (secs, mbps) = download(tb, test);
        figure(
            tb.mode,
            test,
            &format!("curl 16 MiB in {secs:.2} s ({mbps:.0} Mbit/s)"),
        );
        // c2 leaves with the same public address.
        let before = tb.lines_in("srv-access.log");
        tb.ok(
            "c2",
            &format!("curl -sS --max-time 10 -o /dev/null http://{SRV1}/"),
            15,
        );
        let log = tb.log_after("srv-access.log", before, 1);
        let last = log.lines().last().unwrap_or("");
        assert_eq!(field(last, 0), PUBLIC, "c2's request: {last}");
        // Egress filtering: nothing listens on 26 or 25 at the server, so an allowed SYN is
        // answered with a reset (curl exit 7) and a denied one times out (exit 28).
        let code = |port: u16| {
            tb.exec(
                "c1",
                &format!("curl -sS --connect-timeout 3 http://{SRV1}:{port}/"),
                10,
            )
            .status
            .code()
        };
        assert_eq!(
            code(26),
            Some(7),
            "[{}] {test}: tcp/26 (allowed) should be refused by the server",
            tb.mode
        );
        assert_eq!(
            code(25),
            Some(28),
            "[{}] {test}: tcp/25 is denied by an egress rule: the SYN must not get out",
            tb.mode
        );
    });
}

/// UDP and ICMP: DNS queries answered through NAT, ping out and back.
#[test]
fn dns_and_ping_through_nat() {
    let test = "dns_and_ping_through_nat";
    each_mode(test, Options::default(), |tb| {
        let ms = dns(tb, test);
        let rtt = ping(tb, test);
        figure(
            tb.mode,
            test,
            &format!("dig query time {ms} ms; ping rtt avg {rtt:.3} ms"),
        );
    });
}

/// iperf3 TCP for 10 s and UDP for 5 s through the appliance: no interval without data.
#[test]
fn iperf3_tcp_and_udp() {
    let test = "iperf3_tcp_and_udp";
    each_mode(test, Options::default(), |tb| {
        let (mbps, retr) = iperf3_tcp(tb, test, 10);
        let v = iperf3(tb, test, "-u -b 200M", 5);
        let udp = v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .or_else(|| v["end"]["sum"]["bits_per_second"].as_f64())
            .unwrap_or(0.0)
            / 1e6;
        let lost = v["end"]["sum"]["lost_percent"].as_f64().unwrap_or(100.0);
        assert!(
            lost < 50.0,
            "[{}] {test}: iperf3 UDP lost {lost:.1}% of its datagrams",
            tb.mode
        );
        figure(
            tb.mode,
            test,
            &format!(
                "iperf3 TCP 10 s {mbps:.0} Mbit/s ({retr} retransmits, offloads off); \
                 UDP 5 s offered 200 Mbit/s, received {udp:.0} Mbit/s, lost {lost:.2}%"
            ),
        );
    });
}

/// Ingress default deny: nmap from the router (TCP SYN, UDP, ICMP) against the public address
/// and the inside hosts finds only the port forward open, and the inside hosts receive
/// nothing they did not ask for (tcpdump in c1 and c2).
#[test]
fn ingress_default_deny_under_nmap() {
    let test = "ingress_default_deny_under_nmap";
    each_mode(test, Options::default(), |tb| {
        // An attacker next to the appliance sends to the inside range too.
        tb.ok(
            "inet",
            &format!("ip route replace 10.0.1.0/24 via {PUBLIC}"),
            5,
        );
        let mut caps = Vec::new();
        for host in ["c1", "c2"] {
            let file = tb.run.join(format!("{host}.pcap"));
            let err = format!("tcpdump-{host}.err");
            let i = tb.spawn(
                host,
                &[
                    "tcpdump",
                    "-i",
                    "eth0",
                    "-n",
                    "-p",
                    "-U",
                    "-Z",
                    "root",
                    "-Q",
                    "in",
                    "-w",
                    &file.to_string_lossy(),
                    "ip",
                ],
                &err,
            );
            let errf = tb.run.join(&err);
            assert!(
                common::wait_for(Duration::from_secs(10), || std::fs::read_to_string(&errf)
                    .unwrap_or_default()
                    .contains("listening on")),
                "tcpdump in {host} did not start: {}",
                std::fs::read_to_string(&errf).unwrap_or_default()
            );
            caps.push((host, i, file));
        }
        let targets = format!("{PUBLIC} {C1} {C2}");
        let started = Instant::now();
        let tcp = tb.ok(
            "inet",
            &format!(
                "nmap -n -Pn -sS -T4 --max-retries 1 --min-rate 2000 -p 1-1024,5201,8080,8443 {targets} -oG -"
            ),
            120,
        );
        let udp = tb.ok(
            "inet",
            &format!(
                "nmap -n -Pn -sU -T4 --max-retries 1 --min-rate 500 -p 53,67,123,161,500,5201 {targets} -oG -"
            ),
            120,
        );
        let icmp = tb.ok(
            "inet",
            &format!("nmap -n -sn -T4 -PE -PP -PM --max-retries 1 --min-rate 1000 {PUBLIC} 10.0.1.0/24 -oG -"),
            120,
        );
        let scan_secs = started.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_millis(500));
        let mut seen = Vec::new();
        for (host, i, file) in caps {
            tb.signal_and_wait(i, "INT", 10);
            let frames = common::pcap::read(&file);
            let (mut forward, mut other) = (0, Vec::new());
            for f in &frames {
                if f.len() < 34 || f[12..14] != [0x08, 0x00] {
                    continue;
                }
                let ihl = usize::from(f[14] & 0x0f) * 4;
                let proto = f[23];
                if f[30] & 0xf0 == 0xe0 {
                    continue; // multicast: not traffic from outside
                }
                let src = format!("{}.{}.{}.{}", f[26], f[27], f[28], f[29]);
                let ports = (f.len() >= 14 + ihl + 4).then(|| {
                    (
                        u16::from_be_bytes([f[14 + ihl], f[15 + ihl]]),
                        u16::from_be_bytes([f[16 + ihl], f[17 + ihl]]),
                    )
                });
                // The port forward's own traffic (nmap's probes of 8080 land on c2:80).
                if host == "c2" && proto == 6 && ports.is_some_and(|(_, d)| d == 80) {
                    forward += 1;
                } else {
                    other.push(format!("proto {proto} from {src} ports {ports:?}"));
                }
            }
            seen.push(format!(
                "{host}: {} unsolicited, {forward} to the forward",
                other.len()
            ));
            assert!(
                other.is_empty(),
                "[{}] {test}: {host} received {} unsolicited packets during the scans: {:?}",
                tb.mode,
                other.len(),
                &other[..other.len().min(10)]
            );
        }
        // Grepable nmap: "Host: 192.0.2.2 ()\tPorts: 22/filtered/tcp//ssh///, ..."
        let mut open = Vec::new();
        for (kind, out) in [("tcp", &tcp), ("udp", &udp)] {
            for line in out.lines().filter(|l| l.contains("Ports: ")) {
                let host = field(line, 1);
                let ports = line.split("Ports: ").nth(1).unwrap_or("");
                // "\tIgnored State: filtered (1026)" sums up the rest.
                let ports = ports.split('\t').next().unwrap_or("");
                for p in ports.split(", ").filter(|p| !p.trim().is_empty()) {
                    let mut parts = p.split('/');
                    let (port, state) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                    match state {
                        "filtered" | "open|filtered" => {}
                        _ => open.push(format!("{host}:{port}/{kind} {state}")),
                    }
                }
            }
        }
        assert_eq!(
            open,
            vec![format!("{PUBLIC}:{FORWARD_PORT}/tcp open")],
            "[{}] {test}: from outside, only the port forward may answer (every other port \
             silently dropped: filtered)",
            tb.mode
        );
        let mut up: Vec<&str> = icmp
            .lines()
            .filter(|l| l.contains("Status: Up"))
            .map(|l| field(l, 1))
            .collect();
        up.dedup();
        assert_eq!(
            up,
            vec![PUBLIC],
            "[{}] {test}: ICMP sweep from outside: only the appliance's public address may \
             answer (local echo), no inside address",
            tb.mode
        );
        figure(
            tb.mode,
            test,
            &format!(
                "nmap TCP 1027 ports + UDP 6 ports x 3 hosts + ICMP sweep of 257 addresses in \
                 {scan_secs:.1} s; open: {open:?}; {}",
                seen.join("; ")
            ),
        );
    });
}

/// Port forward 192.0.2.2:8080 -> c2:80 from outside, and hairpin from c1.
#[test]
fn port_forward_and_hairpin() {
    let test = "port_forward_and_hairpin";
    each_mode(test, Options::default(), |tb| {
        port_forward(tb, test);
        let before = tb.lines_in("c2-access.log");
        let body = tb.ok(
            "c1",
            &format!("curl -sS --max-time 10 http://{PUBLIC}:{FORWARD_PORT}/"),
            15,
        );
        assert!(
            body.contains("port forward target"),
            "[{}] {test}: hairpin c1 -> {PUBLIC}:{FORWARD_PORT} did not reach c2: {body}",
            tb.mode
        );
        let log = tb.log_after("c2-access.log", before, 1);
        let hairpin_src = field(log.lines().last().unwrap_or(""), 0).to_string();
        assert_ne!(
            hairpin_src, C1,
            "[{}] {test}: hairpin without source translation: c2 would answer c1 directly",
            tb.mode
        );
        figure(
            tb.mode,
            test,
            &format!("forward from {SRV1} ok; hairpin from c1 ok, seen by c2 as {hairpin_src}"),
        );
    });
}

/// traceroute (UDP) shows the router hop and the server: the ICMP time-exceeded and
/// port-unreachable errors come back translated; UDP to a closed port is refused.
#[test]
fn traceroute_and_port_unreachable() {
    let test = "traceroute_and_port_unreachable";
    each_mode(test, Options::default(), |tb| {
        let out = tb.ok("c1", &format!("traceroute -n -q 1 -w 2 -m 6 {SRV1}"), 30);
        let hops: Vec<String> = out
            .lines()
            .skip(1)
            .map(|l| field(l, 1).to_string())
            .collect();
        assert!(
            hops.iter().any(|h| h == ROUTER),
            "[{}] {test}: the router {ROUTER}'s time exceeded did not come back translated:\n{out}",
            tb.mode
        );
        assert_eq!(
            hops.last().map(String::as_str),
            Some(SRV1),
            "[{}] {test}: the server's port unreachable did not end the trace:\n{out}",
            tb.mode
        );
        let out = tb.exec(
            "c1",
            &format!("dig +time=2 +tries=1 -p {CLOSED_UDP_PORT} @{SRV1} www.nva.test"),
            10,
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("connection refused"),
            "[{}] {test}: UDP to {SRV1}:{CLOSED_UDP_PORT} (closed) should get ICMP port \
             unreachable back, translated to c1 (dig: connection refused):\n{text}",
            tb.mode
        );
        figure(tb.mode, test, &format!("hops {}", hops.join(" ")));
    });
}

/// Policy reload during an iperf3 run: a reload that still allows the flow keeps it going; an
/// egress deny rule for its destination then stops new connections there and the open one
/// (recheck), while other destinations still work.
#[test]
fn reload_denies_new_and_open_flows() {
    let test = "reload_denies_new_and_open_flows";
    each_mode(test, Options::default(), |tb| {
        let i = tb.spawn(
            "c1",
            &[
                "iperf3",
                "-c",
                SRV2,
                "-p",
                "5202",
                "-t",
                "40",
                "-i",
                "1",
                "-f",
                "m",
                "--forceflush",
            ],
            "iperf3-reload.err",
        );
        let lines = tb.lines(i);
        // Interval lines: "[  5]   3.00-4.00   sec  56.2 MBytes   473 Mbits/sec ..."
        let next_interval = |deadline: Instant| -> Option<(Instant, f64)> {
            loop {
                let left = deadline.checked_duration_since(Instant::now())?;
                let (_, line) = lines.recv_timeout(left).ok()?;
                let w: Vec<&str> = line.split_whitespace().collect();
                if let Some(at) = w.iter().position(|x| *x == "sec") {
                    if w.len() > at + 4 && w[at + 4] == "Mbits/sec" {
                        return Some((Instant::now(), w[at + 3].parse().unwrap_or(0.0)));
                    }
                }
            }
        };
        let flowing = |n: usize, secs: u64| {
            let deadline = Instant::now() + Duration::from_secs(secs);
            let mut rates = Vec::new();
            while rates.len() < n {
                match next_interval(deadline) {
                    Some((_, r)) if r > 0.0 => rates.push(r),
                    Some((_, r)) => panic!("iperf3 interval at {r} Mbit/s while allowed"),
                    None => return None,
                }
            }
            Some(rates)
        };
        let before = flowing(2, 15).unwrap_or_else(|| {
            panic!(
                "[{}] {test}: iperf3 to {SRV2} did not start: {}",
                tb.mode,
                tb.read("iperf3-reload.err")
            )
        });
        let mut rules = Vec::new();
        tb.deny_egress("203.0.113.99/32", &mut rules);
        let after_allowed = flowing(2, 8).unwrap_or_else(|| {
            panic!(
                "[{}] {test}: the flow stopped after a reload that still allows it",
                tb.mode
            )
        });
        tb.deny_egress("198.51.100.0/24", &mut rules);
        let denied_at = Instant::now();
        // The open flow stops: iperf3 reports empty intervals or gives up.
        let mut stopped = None;
        let deadline = denied_at + Duration::from_secs(10);
        let mut zeros = 0;
        while stopped.is_none() {
            match next_interval(deadline) {
                Some((at, 0.0)) => {
                    zeros += 1;
                    if zeros == 2 {
                        stopped = Some(at.duration_since(denied_at).as_secs_f64() - 2.0);
                    }
                }
                Some(_) => zeros = 0,
                None => {
                    // Before the deadline: iperf3 closed its output, it ended (a reset).
                    if Instant::now() < deadline {
                        stopped = Some(denied_at.elapsed().as_secs_f64());
                    }
                    break;
                }
            }
        }
        let stopped = stopped.unwrap_or_else(|| {
            panic!(
                "[{}] {test}: the open iperf3 flow to {SRV2} kept going for 10 s after the deny \
                 rule was reloaded (recheck must stop it)",
                tb.mode
            )
        });
        tb.signal_and_wait(i, "INT", 5);
        let new_to_denied = tb.exec(
            "c1",
            &format!("curl -sS --connect-timeout 3 -o /dev/null http://{SRV2}/"),
            10,
        );
        assert!(
            !new_to_denied.status.success(),
            "[{}] {test}: a new connection to the denied {SRV2} succeeded",
            tb.mode
        );
        tb.ok(
            "c1",
            &format!("curl -sS --max-time 10 -o /dev/null http://{SRV1}/"),
            15,
        );
        figure(
            tb.mode,
            test,
            &format!(
                "iperf3 {:.0} Mbit/s before, {:.0} Mbit/s after an allowing reload; stopped \
                 within {:.1} s of the deny; a new connection there blocked, {SRV1} still reached",
                before.iter().sum::<f64>() / before.len() as f64,
                after_allowed.iter().sum::<f64>() / after_allowed.len() as f64,
                stopped.max(0.0)
            ),
        );
    });
}

/// The show with two workers (appliance: lcores "0@0,1@1,2@1"; kernel: RPS over both cores on
/// the forwarding namespace), and the appliance counts handoffs between its workers.
#[test]
fn two_workers() {
    let test = "two_workers";
    let options = Options {
        workers: 2,
        ..Options::default()
    };
    each_mode(test, options, |tb| {
        let (secs, mbps) = download(tb, test);
        let ms = dns(tb, test);
        let rtt = ping(tb, test);
        port_forward(tb, test);
        let (tcp, retr) = iperf3_tcp(tb, test, 5);
        let mut handoffs = String::from("n/a (kernel)");
        if tb.mode == Mode::Appliance {
            let s = tb.stats();
            let workers = s["workers"].as_array().cloned().unwrap_or_default();
            assert_eq!(workers.len(), 2, "[{}] {test}: stats: {s}", tb.mode);
            let total: u64 = workers
                .iter()
                .map(|w| w["handoffs"].as_u64().unwrap_or(0))
                .sum();
            assert!(
                total > 0,
                "[{}] {test}: no handoffs counted between the two workers: {s}",
                tb.mode
            );
            handoffs = total.to_string();
        }
        figure(
            tb.mode,
            test,
            &format!(
                "curl 16 MiB in {secs:.2} s ({mbps:.0} Mbit/s); dig {ms} ms; ping {rtt:.3} ms; \
                 iperf3 TCP 5 s {tcp:.0} Mbit/s ({retr} retransmits); handoffs {handoffs}"
            ),
        );
    });
}

/// SIGKILL the appliance in the middle of a download, start it again: traffic passes again
/// and nothing leaks (huge page files, DPDK runtime files, namespaces). Kernel mode: the NAT
/// is torn down (no rules, addresses or forwarding) and set up again.
#[test]
fn kill_mid_transfer_and_restart() {
    let test = "kill_mid_transfer_and_restart";
    if !can_run(test) {
        return;
    }
    for mode in modes() {
        let options = Options {
            huge_pages: true,
            ..Options::default()
        };
        let mut tb = Testbed::up(mode, test, options);
        tb.wait_ready();
        let prefix = tb.prefix.clone();
        let file_prefix = prefix.trim_end_matches('-').to_string();
        let part = tb.run.join("c1-partial.bin");
        let i = tb.spawn(
            "c1",
            &[
                "curl",
                "-sS",
                "--limit-rate",
                "2M",
                "--max-time",
                "40",
                "--speed-time",
                "6",
                "--speed-limit",
                "1000",
                "-o",
                &part.to_string_lossy(),
                "-w",
                "%{size_download} %{http_code}",
                &format!("http://{SRV1}/big.bin"),
            ],
            "curl-partial.err",
        );
        assert!(
            common::wait_for(Duration::from_secs(10), || std::fs::metadata(&part)
                .map(|m| m.len() > 1_000_000)
                .unwrap_or(false)),
            "[{mode}] {test}: the download did not get going"
        );
        tb.crash();
        let killed_at = Instant::now();
        assert!(
            !tb.exec("c1", &format!("ping -c 1 -W 1 {SRV1}"), 5)
                .status
                .success(),
            "[{mode}] {test}: traffic still passes with the appliance killed"
        );
        let at_kill = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        tb.restart();
        let restarted = Instant::now();
        tb.wait_ready();
        let recovery = restarted.elapsed().as_secs_f64();
        let since_kill = killed_at.elapsed().as_secs_f64();
        let huge = common::hugepages_available();
        let (secs, mbps) = download(&tb, test);
        // The interrupted download: resumed or gave up (its session is gone); either is fine.
        let status = wait_child(tb.child(i), Duration::from_secs(15));
        let mut old = String::new();
        if let Some(mut o) = tb.child(i).stdout.take() {
            use std::io::Read;
            let _ = o.read_to_string(&mut old);
        }
        if mode == Mode::Appliance {
            let status = tb.stop_appliance();
            assert!(
                status.is_some_and(|s| s.success()),
                "[{mode}] {test}: the restarted appliance did not stop cleanly: {status:?}{}",
                tb.appliance_hint()
            );
        }
        drop(tb);
        assert!(
            namespaces_with(&prefix).is_empty(),
            "[{mode}] {test}: namespaces left after teardown: {:?}",
            namespaces_with(&prefix)
        );
        let leaked: Vec<String> = common::hugetlbfs_mounts()
            .iter()
            .flat_map(|m| std::fs::read_dir(m).into_iter().flatten().flatten())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&file_prefix))
            .collect();
        assert!(
            leaked.is_empty(),
            "[{mode}] {test}: huge page files left: {leaked:?}"
        );
        let runtime = std::path::Path::new("/var/run/dpdk").join(&file_prefix);
        assert!(
            !runtime.exists(),
            "[{mode}] {test}: DPDK runtime folder left: {}",
            runtime.display()
        );
        figure(
            mode,
            test,
            &format!(
                "killed at {:.1} MB; traffic again {recovery:.1} s after the restart ({:.1} s \
                 after the kill); new 16 MiB download {secs:.2} s ({mbps:.0} Mbit/s); the \
                 interrupted one: {status} {}; huge pages {}",
                at_kill as f64 / 1e6,
                since_kill,
                old.trim(),
                match (mode, huge) {
                    (Mode::Kernel, _) => "n/a (kernel)",
                    (Mode::Appliance, true) => "on, none left",
                    (Mode::Appliance, false) => "off (none free)",
                }
            ),
        );
    }
}

/// A ready testbed of `topology` in appliance mode (the several-appliance layouts have no
/// kernel baseline), or `None` where [`can_run`] says the test may be skipped.
fn topology_ready(test: &str, topology: Topology) -> Option<Testbed> {
    if !can_run(test) {
        return None;
    }
    let options = Options {
        topology,
        ..Options::default()
    };
    let mut tb = Testbed::up(Mode::Appliance, test, options);
    tb.wait_ready();
    Some(tb)
}

/// NAT scale-out without a load balancer: two appliances, each with its own public address
/// (`configs/ecmp-a.toml`, `ecmp-b.toml`), behind an inside router with an ECMP default route
/// hashed on the 5-tuple. Many HTTP downloads and DNS queries from both hosts: every one
/// succeeds, both instances carry some (the server sees both public addresses), and each
/// reply comes back through the instance that translated its flow: neither drops a packet
/// from outside for want of a session, and each instance's sessions match what the server
/// logged from its address.
#[test]
fn ecmp_nat_scale_out() {
    let test = "ecmp_nat_scale_out";
    let Some(tb) = topology_ready(test, Topology::Ecmp) else {
        return;
    };
    // 32 connections from each host, each from a new source port: the router's hash
    // spreads them. One shell loop per host, curl printing each status code.
    let flows = 32;
    let before = tb.lines_in("srv-access.log");
    for host in ["c1", "c2"] {
        let codes = tb.ok(
            host,
            &format!(
                "for i in $(seq {flows}); do curl -s -o /dev/null -w '%{{http_code}}\\n' \
                 --max-time 5 http://{SRV1}/index.html; done"
            ),
            120,
        );
        let ok = codes.lines().filter(|c| *c == "200").count();
        assert_eq!(
            ok, flows,
            "{test}: {host}: {ok} of {flows} downloads answered 200: {codes}"
        );
        let answers = tb.ok(
            host,
            &format!(
                "for i in $(seq {flows}); do dig +short +time=2 +tries=1 @{SRV1} www.nva.test; done"
            ),
            120,
        );
        let ok = answers.lines().filter(|a| *a == SRV1).count();
        assert_eq!(
            ok, flows,
            "{test}: {host}: {ok} of {flows} DNS queries answered: {answers}"
        );
    }
    // Who the server saw: every request came from one of the two public addresses, and
    // from both.
    let log = tb.log_after("srv-access.log", before, 2 * flows);
    let from = |a: &str| {
        log.lines()
            .filter(|l| l.starts_with(&format!("{a} ")))
            .count()
    };
    let (a, b) = (from("192.0.2.2"), from("192.0.2.3"));
    assert_eq!(
        a + b,
        2 * flows,
        "{test}: requests not from a public address:\n{log}"
    );
    assert!(
        a > 0 && b > 0,
        "{test}: the flows did not spread: {a} via fw1, {b} via fw2"
    );
    // Each instance: the sessions it created are the flows it carried (HTTP, DNS and the
    // readiness pings), and it dropped nothing arriving from outside for want of a session.
    let mut created = Vec::new();
    for i in tb.instances.clone() {
        let s = tb.stats_of(&i.config);
        let n = s["sessions"]["created_total"].as_u64().unwrap_or(0);
        let drops = s["drops"].as_array().cloned().unwrap_or_default();
        let refused: u64 = drops
            .iter()
            .filter(|d| {
                ["ingress_denied", "tcp_no_session", "icmp_error_no_session"]
                    .iter()
                    .any(|r| d[0] == *r)
            })
            .map(|d| d[1].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(refused, 0, "{test}: {} dropped replies: {s}", i.ns);
        assert!(n > 0, "{test}: {} created no session: {s}", i.ns);
        created.push(n);
    }
    figure(
        Mode::Appliance,
        test,
        &format!(
            "{} HTTP downloads: {a} via fw1 (192.0.2.2), {b} via fw2 (192.0.2.3); sessions created fw1 {}, fw2 {}",
            2 * flows,
            created[0],
            created[1]
        ),
    );
}

/// The HTTP health probe through the real data path, as a load balancer sees it: curl from
/// the router (an allowed source) gets 200 on the public address, 503 after `appliance
/// drain` while traffic still flows both ways, 200 again after `appliance resume`; the
/// inside address answers the same; a source outside `sources` gets no answer at all (its
/// SYN dropped as `local_denied`). Then SIGTERM with `drain_on_stop`: the probe says 503
/// while the appliance still forwards, and it stops by itself when the drain is over.
/// Appliance mode only: the kernel baseline has no probe.
#[test]
fn health_probe_http() {
    let test = "health_probe_http";
    if !can_run(test) {
        return;
    }
    if !modes().contains(&Mode::Appliance) {
        println!("== {test}: appliance mode only (NVA_E2E_MODE asks for kernel)");
        return;
    }
    const DRAIN_SECS: u64 = 4;
    let options = Options {
        config: vec![format!(
            "[local.health_probe]\nport = 80\nprotocol = \"http\"\npath = \"/healthz\"\n\
             sources = [\"{ROUTER}/32\", \"{C1}/32\"]\ndrain_on_stop = {DRAIN_SECS}"
        )],
        ..Options::default()
    };
    let mut tb = Testbed::up(Mode::Appliance, test, options);
    tb.wait_ready();
    // `curl -w`: "<status> <body>", the body one word.
    let probe = |tb: &Testbed, host: &str, url: &str| -> String {
        let out = tb.ok(
            host,
            &format!("curl -sS --max-time 5 -w ' %{{http_code}}' {url}"),
            10,
        );
        out.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let public = format!("http://{PUBLIC}/healthz");
    let inside = format!("http://{INSIDE_GW}/healthz");
    let started = Instant::now();
    assert_eq!(
        probe(&tb, "inet", &public),
        "serving 200",
        "from the router"
    );
    let first_ms = started.elapsed().as_secs_f64() * 1e3;
    assert_eq!(probe(&tb, "c1", &inside), "serving 200", "from c1, inside");
    assert_eq!(
        probe(&tb, "inet", &format!("http://{PUBLIC}/")),
        "not found 404"
    );
    let head = tb.ok("inet", &format!("curl -sS --max-time 5 -I {public}"), 10);
    assert!(
        head.starts_with("HTTP/1.1 200 OK") && head.contains("Connection: close"),
        "{head}"
    );

    // A source the probe does not admit: no SYN-ACK, curl times out (exit 28).
    let denied_before = tb.stats()["drops"]["local_denied"].as_u64().unwrap_or(0);
    for (host, url) in [("srv", &public), ("c2", &inside)] {
        let out = tb.exec(
            host,
            &format!("curl -sS --connect-timeout 2 -o /dev/null {url}"),
            10,
        );
        assert_eq!(
            out.status.code(),
            Some(28),
            "{host} is not in sources: its connect must time out, not be answered: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let denied = tb.stats()["drops"]["local_denied"].as_u64().unwrap_or(0);
    assert!(
        denied >= denied_before + 2,
        "the strangers' SYNs are counted as local_denied ({denied_before} -> {denied})"
    );

    // Drain: the probe fails, traffic flows.
    let out = tb.control_ok("drain", &[]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.starts_with("draining"), "{said}");
    assert_eq!(probe(&tb, "inet", &public), "draining 503");
    assert_eq!(probe(&tb, "c1", &inside), "draining 503");
    assert_eq!(tb.stats()["draining"], true);
    tb.ok(
        "c1",
        &format!("curl -sS --max-time 10 -o /dev/null http://{SRV1}/"),
        15,
    );
    port_forward(&tb, test);
    tb.control_ok("resume", &[]);
    assert_eq!(probe(&tb, "inet", &public), "serving 200");

    // A stop with drain_on_stop: 503 while still forwarding, then the appliance ends.
    tb.signal_appliance("TERM");
    let term = Instant::now();
    assert_eq!(probe(&tb, "inet", &public), "draining 503", "after SIGTERM");
    tb.ok("c1", &format!("ping -c 2 -i 0.2 -W 2 {SRV1}"), 10);
    let status = tb
        .wait_appliance(Duration::from_secs(DRAIN_SECS + 10))
        .unwrap_or_else(|| panic!("{test}: the appliance did not stop after its drain"));
    let stopped = term.elapsed().as_secs_f64();
    assert!(status.success(), "{test}: exit status {status}");
    assert!(
        stopped >= DRAIN_SECS as f64 - 0.5,
        "{test}: stopped {stopped:.1} s after SIGTERM, before its {DRAIN_SECS} s drain"
    );
    figure(
        Mode::Appliance,
        test,
        &format!(
            "first probe answered in {first_ms:.0} ms; 200 -> 503 on drain -> 200 on resume; \
             strangers unanswered; SIGTERM drained {stopped:.1} s (drain_on_stop = {DRAIN_SECS})"
        ),
    );
}

/// What a load-balancer test checks through the appliances behind it (no NAT: the inside
/// hosts' own addresses reach the server): a download from each inside host, intact and
/// seen from the host's own address; DNS; iperf3 TCP from c1. Returns iperf3's rate (Mbit/s).
fn through_load_balancer(tb: &Testbed, test: &str) -> f64 {
    let want = tb.read("www-srv/big.bin.sha256");
    let before = tb.lines_in("srv-access.log");
    for host in ["c1", "c2"] {
        let file = tb.run.join(format!("{host}-big.bin"));
        tb.ok(
            host,
            &format!(
                "curl -sS --max-time 60 -o {} http://{SRV1}/big.bin",
                file.display()
            ),
            70,
        );
        let got = common::sh(&format!("sha256sum {}", file.display()));
        assert_eq!(
            field(&got, 0),
            field(&want, 0),
            "{test}: {host}'s download differs"
        );
        let _ = std::fs::remove_file(&file);
        let answer = tb.ok(
            host,
            &format!("dig +short +time=2 @{SRV1} www.nva.test"),
            10,
        );
        assert_eq!(answer.trim(), SRV1, "{test}: {host}: DNS answer");
    }
    let log = tb.log_after("srv-access.log", before, 2);
    for addr in [C1, C2] {
        assert!(
            log.lines()
                .any(|l| l.starts_with(&format!("{addr} ")) && l.contains("GET /big.bin")),
            "{test}: the server did not see {addr} itself (no NAT behind a load balancer):\n{log}"
        );
    }
    let (mbps, _) = iperf3_tcp(tb, test, 3);
    mbps
}

/// Drops in an appliance's stats that mean a packet of an admitted flow reached an appliance
/// that did not admit it (the other instance, or after its session was lost).
fn stray_drops(s: &serde_json::Value) -> u64 {
    s["drops"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| {
            ["tcp_no_session", "icmp_error_no_session"]
                .iter()
                .any(|r| d[0] == *r)
        })
        .map(|d| d[1].as_u64().unwrap_or(0))
        .sum()
}

/// nmap from the server's side against both inside hosts (c2 runs a web server on port 80):
/// nothing unsolicited gets through the appliance, so no port is open.
fn nothing_open_from_outside(tb: &Testbed, test: &str) {
    let out = tb.ok(
        "srv",
        &format!(
            "nmap -n -Pn -sS -T4 --max-retries 1 --min-rate 2000 -p 1-1024,5201,8080 {C1} {C2} -oG -"
        ),
        120,
    );
    let open: Vec<&str> = out.lines().filter(|l| l.contains("/open/")).collect();
    assert!(
        open.is_empty(),
        "{test}: nmap from outside found open ports:\n{}",
        open.join("\n")
    );
    assert!(
        out.lines()
            .filter(|l| l.starts_with("Host: ") && l.contains("Ports:"))
            .count()
            == 2,
        "{test}: nmap did not scan both hosts:\n{out}"
    );
}

/// Behind the GENEVE gateway load balancer (`testbed/gwlb-emu.py`, AWS's data path) with
/// two appliances in tunnel mode: downloads, DNS and iperf3 from inside pass; each flow's
/// packets, both ways, cross one appliance only (the emulator's flow table, and no appliance
/// drops a packet of a flow it did not admit); flows land on both; nmap from outside finds
/// nothing open. Then fw1 is killed: the emulator's health probe marks it unhealthy and new
/// flows go to fw2; the time from the kill until every new flow passes is the figure.
#[test]
fn gwlb_geneve_two_appliances() {
    let test = "gwlb_geneve_two_appliances";
    let Some(mut tb) = topology_ready(test, Topology::Gwlb) else {
        return;
    };
    let mbps = through_load_balancer(&tb, test);
    // More flows, so that both appliances get some: 24 short downloads from each host.
    for host in ["c1", "c2"] {
        let codes = tb.ok(
            host,
            &format!(
                "for i in $(seq 24); do curl -s -o /dev/null -w '%{{http_code}}\\n' --max-time 5 http://{SRV1}/index.html; done"
            ),
            150,
        );
        assert_eq!(
            codes.lines().filter(|c| *c == "200").count(),
            24,
            "{test}: {host}: {codes}"
        );
    }
    std::thread::sleep(Duration::from_millis(1200)); // the status file is rewritten each second
    let status = tb.gwlb_status();
    let appliances = status["appliances"].as_array().cloned().unwrap_or_default();
    assert_eq!(appliances.len(), 2, "{test}: emulator status: {status}");
    for a in &appliances {
        assert!(
            a["tx_packets"].as_u64().unwrap_or(0) > 0 && a["rx_packets"].as_u64().unwrap_or(0) > 0,
            "{test}: no flows through {}: {status}",
            a["address"]
        );
        assert_eq!(
            a["option_mismatches"], 0,
            "{test}: GENEVE options changed by {}",
            a["address"]
        );
    }
    // Each flow, both directions, on one appliance: the emulator sent every packet of a
    // flow to the flow's appliance and counts any that came back from another one, or that
    // belong to no flow it sent.
    for c in ["wrong_appliance", "unknown_flow", "option_mismatch"] {
        assert_eq!(
            status["counters"][c], 0,
            "{test}: emulator counter {c}: {status}"
        );
    }
    let mut created = Vec::new();
    for i in tb.instances.clone() {
        let s = tb.stats_of(&i.config);
        assert_eq!(
            stray_drops(&s),
            0,
            "{test}: {} saw packets of flows it did not admit: {s}",
            i.ns
        );
        created.push(s["sessions"]["created_total"].as_u64().unwrap_or(0));
    }
    nothing_open_from_outside(&tb, test);

    // Failover: kill fw1; new flows must pass through fw2.
    let emulator = tb.emulator.expect("the emulator runs in the gwlb topology");
    let lines = tb.lines(emulator);
    let killed = Instant::now();
    tb.kill_instance("fw1");
    let mut all_pass = None;
    while killed.elapsed() < Duration::from_secs(20) {
        // Eight new flows at once (new source ports): all must pass.
        let out = tb.exec(
            "c1",
            &format!(
                "for i in $(seq 8); do curl -s -o /dev/null -w '%{{http_code}}\\n' --max-time 1 http://{SRV1}/index.html & done; wait"
            ),
            10,
        );
        let ok = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|c| *c == "200")
            .count();
        if ok == 8 {
            all_pass = Some(killed.elapsed().as_secs_f64());
            break;
        }
    }
    let all_pass = all_pass.unwrap_or_else(|| {
        panic!(
            "{test}: new flows still fail 20 s after fw1 died: {}",
            tb.read("gwlb-emu.log")
        )
    });
    let detected = lines
        .try_iter()
        .find(|(_, l)| l.contains("10.0.9.11") && l.contains("-> unhealthy"))
        .map(|(t, _)| t);
    assert!(
        detected.is_some(),
        "{test}: the emulator never marked fw1 unhealthy"
    );
    let (mbps2, _) = iperf3_tcp(&tb, test, 2);
    figure(
        Mode::Appliance,
        test,
        &format!(
            "iperf3 TCP {mbps:.0} Mbit/s through GENEVE; sessions created fw1 {}, fw2 {}; after fw1 was killed every new flow passed via fw2 within {all_pass:.1} s (probe every 0.5 s, 2 failures); then iperf3 {mbps2:.0} Mbit/s",
            created[0], created[1]
        ),
    );
}

/// Behind Azure's gateway load balancer chain, emulated with Linux VXLAN devices (internal
/// tunnel VNI 800 / UDP 10800 from the inside, external VNI 801 / UDP 10801 from the
/// internet), one appliance in tunnel mode: downloads, DNS and iperf3 from inside pass,
/// nmap from outside finds nothing open, and the HTTP health probe answers the load
/// balancer's address.
#[test]
fn gwlb_vxlan_chain() {
    let test = "gwlb_vxlan_chain";
    let Some(tb) = topology_ready(test, Topology::Vxlan) else {
        return;
    };
    let mbps = through_load_balancer(&tb, test);
    let probe = tb.ok(
        "rtr",
        "curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://10.0.9.11/healthz",
        5,
    );
    assert_eq!(probe, "200", "{test}: the health probe");
    let s = tb.stats_of(&tb.instances[0].config.clone());
    assert_eq!(stray_drops(&s), 0, "{test}: {s}");
    let created = s["sessions"]["created_total"].as_u64().unwrap_or(0);
    assert!(
        created >= 5,
        "{test}: the appliance created {created} sessions: {s}"
    );
    nothing_open_from_outside(&tb, test);
    figure(
        Mode::Appliance,
        test,
        &format!("iperf3 TCP {mbps:.0} Mbit/s through the VXLAN chain; {created} sessions"),
    );
}
