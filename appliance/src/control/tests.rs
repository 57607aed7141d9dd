//! `Control` with a fake data path: reloads, the socket through `tick`, SIGHUP, file
//! watching, the Prometheus endpoint.

use super::protocol::{Command, Request, Response, MAX_REQUEST, VERSION};
use super::socket::request;
use super::*;
use crate::config::Config;
use crate::testing::control::{self as testing, Background, FakeView};
use crate::testing::PORTS;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(20);

/// The topology's ports with egress allowed by default, `egress` (rules) and `control` (the
/// section's body) appended.
fn config(control: &str, egress: &str) -> String {
    format!("{PORTS}\n[egress]\ndefault = \"allow\"\n{egress}\n\n[control]\n{control}\n")
}

const DENY_SMTP: &str = "[[egress.rule]]\naction = \"deny\"\nproto = \"tcp\"\ndst_ports = [25]\n";

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("nva-ctl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn socket(&self) -> String {
        format!(
            "socket = {:?}",
            self.path("control.sock").display().to_string()
        )
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `text` as the config file and starts a `Control` on it.
fn start(dir: &Scratch, text: &str) -> (PathBuf, Control) {
    let path = dir.path("appliance.toml");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let control = Control::new(&path, config).unwrap_or_else(|e| panic!("{e}"));
    (path, control)
}

fn ask(path: &Path, command: Command) -> Response {
    request(
        path,
        &Request {
            v: VERSION,
            command,
        },
        TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn view() -> Arc<FakeView> {
    Arc::new(FakeView::new(testing::snapshot(1), testing::sessions()))
}

#[test]
fn starts_at_generation_one_and_good_reload_is_seen_by_workers() {
    let dir = Scratch::new("good");
    let (path, mut control) = start(&dir, &config("socket = \"\"", ""));
    assert_eq!(control.generation(), 1);
    assert!(control.socket_path().is_none());
    let worker_handle = control.policy();
    assert_eq!(worker_handle.load().egress.len(), 0);

    std::fs::write(&path, config("socket = \"\"", DENY_SMTP)).unwrap();
    let report = control.reload().unwrap();
    assert_eq!((report.previous, report.generation), (1, 2));
    let seen = worker_handle.load();
    assert_eq!(seen.generation, 2);
    assert_eq!(seen.egress.len(), 1);
    assert_eq!(control.reloads(), ReloadCounts { ok: 1, failed: 0 });
}

#[test]
fn bad_reloads_leave_the_running_policy() {
    let dir = Scratch::new("bad");
    let (path, mut control) = start(&dir, &config("socket = \"\"", DENY_SMTP));
    let before = control.current();
    // Each bad file is refused with a message naming the problem.
    let cases: Vec<(String, &str)> = vec![
        (
            config(
                "socket = \"\"",
                "[[egress.rule]]\naction = \"deny\"\ndst = [\"10.0.0.1/8\"]\n",
            ),
            "egress.rule[0].dst[0]",
        ),
        (
            config("socket = \"\"", "").replace("[egress]", "[egres]"),
            "egres",
        ),
        ("not toml at all [".to_string(), "appliance.toml"),
        (
            config("socket = \"\"", DENY_SMTP).replace("net_null0", "net_null7"),
            "port[0].device cannot change without a restart",
        ),
        (
            config("socket = \"\"", DENY_SMTP).replace("lcores = \"0-1\"", "lcores = \"0-2\""),
            "eal.lcores cannot change without a restart",
        ),
        (
            config("socket = \"/tmp/x.sock\"", DENY_SMTP),
            "control.socket cannot change without a restart",
        ),
        (
            config("socket = \"relative.sock\"", DENY_SMTP),
            "control.socket",
        ),
        (
            // The SNAT pool is the wan address while nat.addresses is empty; moving the wan
            // address moves the pool.
            config("socket = \"\"", DENY_SMTP).replace("192.0.2.2/24", "192.0.2.3/24"),
            "nat.addresses (the SNAT pool) cannot change without a restart",
        ),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        std::fs::write(&path, text).unwrap();
        let err = control.reload().unwrap_err().to_string();
        assert!(err.contains(needle), "{needle}: {err}");
        assert!(
            err.starts_with("reload refused, policy generation 1 stays in force"),
            "{err}"
        );
        let now = control.current();
        assert!(Arc::ptr_eq(&before, &now), "policy replaced by a bad file");
        assert_eq!(now.generation, 1);
        assert_eq!(now.egress.len(), 1);
        assert_eq!(control.reloads().failed, i as u64 + 1);
    }
    std::fs::remove_file(&path).unwrap();
    let err = control.reload().unwrap_err().to_string();
    assert!(err.contains("cannot read"), "{err}");
    assert_eq!(control.generation(), 1);
    assert_eq!(control.reloads().ok, 0);
}

#[test]
fn every_command_round_trips_through_tick() {
    let dir = Scratch::new("socket");
    let (path, control) = start(&dir, &config(&dir.socket(), ""));
    let sock = control.socket_path().unwrap().to_path_buf();
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "control socket mode");
    let view = view();
    let bg = Background::start(control, view.clone());

    let r = ask(&sock, Command::Version);
    assert!(r.ok, "{r:?}");
    let data = r.data.unwrap();
    assert_eq!(data["protocol"], VERSION);
    assert_eq!(data["generation"], 1);

    let r = ask(&sock, Command::Stats);
    let data = r.data.unwrap();
    assert_eq!(data["ports"][1]["name"], "wan");
    assert_eq!(data["drops"]["policy_deny"], 3);
    assert_eq!(data["policy_generation"], 1);
    assert_eq!(data["workers"][0]["busy_cycles"], 150_000);

    let all = ask(
        &sock,
        Command::Sessions {
            filter: None,
            limit: None,
        },
    )
    .data
    .unwrap();
    assert_eq!(all["sessions"].as_array().unwrap().len(), 3);
    assert_eq!(all["more"], false);
    let some = ask(
        &sock,
        Command::Sessions {
            filter: Some("proto tcp and host 10.0.1.5".into()),
            limit: Some(10),
        },
    )
    .data
    .unwrap();
    assert_eq!(some["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(some["sessions"][0]["remote"], "198.51.100.7:443");
    let capped = ask(
        &sock,
        Command::Sessions {
            filter: None,
            limit: Some(2),
        },
    )
    .data
    .unwrap();
    assert_eq!(capped["sessions"].as_array().unwrap().len(), 2);
    assert_eq!(capped["more"], true);
    for (filter, limit, why) in [
        (Some("proto sctp"), None, "filter: proto"),
        (Some("colour red"), None, "unknown term"),
        (None, Some(0), "limit 0"),
        (None, Some(MAX_SESSIONS_LIMIT + 1), "must be between"),
    ] {
        let r = ask(
            &sock,
            Command::Sessions {
                filter: filter.map(String::from),
                limit,
            },
        );
        assert!(!r.ok);
        assert!(r.error.as_deref().unwrap().contains(why), "{r:?}");
    }

    let r = ask(&sock, Command::Policy);
    let data = r.data.unwrap();
    assert_eq!(data["summary"]["generation"], 1);
    assert_eq!(data["config"], path.display().to_string());
    assert!(render::policy(&data)
        .unwrap()
        .contains("policy generation 1"));

    let r = ask(&sock, Command::Reload);
    assert!(r.ok, "{r:?}");
    assert_eq!(r.data.unwrap()["generation"], 2);
    std::fs::write(&path, config(&dir.socket(), "[[egress.rule]]\n")).unwrap();
    let r = ask(&sock, Command::Reload);
    assert!(!r.ok);
    assert!(r.error.unwrap().contains("action"));
    let data = ask(&sock, Command::Stats).data.unwrap();
    assert_eq!(data["reloads"]["ok"], 1);
    assert_eq!(data["reloads"]["failed"], 1);
    assert_eq!(data["policy_generation"], 2);

    // Malformed, unknown, oversized: errors, and the loop goes on.
    let raw = |bytes: &[u8]| -> Response {
        let mut s = UnixStream::connect(&sock).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        let _ = s.write_all(bytes);
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    };
    for (bytes, why) in [
        (
            b"{\"v\":1,\"cmd\":\"self_destruct\"}\n".to_vec(),
            "unknown command",
        ),
        (b"{{{\n".to_vec(), "not JSON"),
        (
            b"{\"v\":1,\"cmd\":\"stats\",\"x\":1}\n".to_vec(),
            "unknown field",
        ),
        (
            b"{\"v\":1,\"cmd\":\"sessions\",\"limit\":-1}\n".to_vec(),
            "bad request",
        ),
        (
            {
                let mut v = vec![b'a'; MAX_REQUEST + 10];
                v.push(b'\n');
                v
            },
            "limit",
        ),
    ] {
        let r = raw(&bytes);
        assert!(!r.ok);
        assert!(r.error.as_deref().unwrap().contains(why), "{r:?}");
    }
    assert!(ask(&sock, Command::Version).ok);

    let control = bg.stop().unwrap();
    drop(control);
    assert!(!sock.exists(), "socket removed when Control drops");
}

/// Concurrent `reload`s from several clients: each gets an answer, and the generation grows
/// by exactly the number that succeeded, whatever the interleaving with a file that flips
/// between good and bad.
#[test]
fn concurrent_reloads_are_serialised() {
    let dir = Scratch::new("concurrent");
    let good = config(&dir.socket(), "");
    let (path, control) = start(&dir, &good);
    let sock = control.socket_path().unwrap().to_path_buf();
    let bg = Background::start(control, view());
    const CLIENTS: usize = 6;
    const EACH: usize = 5;
    let bad = config(&dir.socket(), "[[egress.rule]]\naction = \"maybe\"\n");
    let flipper = {
        let path = path.clone();
        std::thread::spawn(move || {
            for i in 0..40 {
                // Replace atomically, so a reload reads one whole version or the other.
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, if i % 3 == 2 { &bad } else { &good }).unwrap();
                std::fs::rename(&tmp, &path).unwrap();
                std::thread::sleep(Duration::from_millis(3));
            }
            std::fs::write(&path, &good).unwrap();
        })
    };
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                let mut generations = Vec::new();
                let mut failed = 0;
                for _ in 0..EACH {
                    let r = ask(&sock, Command::Reload);
                    if r.ok {
                        generations.push(r.data.unwrap()["generation"].as_u64().unwrap());
                    } else {
                        assert!(r.error.unwrap().contains("reload refused"));
                        failed += 1;
                    }
                }
                (generations, failed)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut failed = 0;
    for c in clients {
        let (g, f) = c.join().unwrap();
        all.extend(g);
        failed += f;
    }
    flipper.join().unwrap();
    assert_eq!(all.len() + failed, CLIENTS * EACH, "every request answered");
    let control = bg.stop().unwrap();
    let ok = all.len() as u64;
    assert_eq!(control.generation(), 1 + ok);
    assert_eq!(
        control.reloads(),
        ReloadCounts {
            ok,
            failed: failed as u64
        }
    );
    // Every successful reload got its own generation: 2, 3, ..., 1 + ok.
    all.sort_unstable();
    assert_eq!(all, (2..=1 + ok).collect::<Vec<_>>());
}

#[test]
fn drain_and_resume_through_the_socket() {
    let dir = Scratch::new("drain");
    let probe = "[local.health_probe]\nport = 80\nprotocol = \"http\"\npath = \"/healthz\"\n";
    let text = format!("{}\n{probe}", config(&dir.socket(), ""));
    let (path, control) = start(&dir, &text);
    let flag = control.draining_flag();
    let sock = control.socket_path().unwrap().to_path_buf();
    let bg = Background::start(control, view());
    assert!(
        !flag.load(std::sync::atomic::Ordering::SeqCst),
        "serving at start"
    );
    let r = ask(&sock, Command::Drain);
    assert!(r.ok, "{r:?}");
    let data = r.data.unwrap();
    assert_eq!(data["draining"], true);
    assert_eq!(data["changed"], true);
    assert_eq!(data["probe"], "http GET /healthz on tcp/80");
    assert!(
        flag.load(std::sync::atomic::Ordering::SeqCst),
        "the workers' flag"
    );
    assert!(render::drain(&data).contains("503"));
    assert_eq!(ask(&sock, Command::Drain).data.unwrap()["changed"], false);
    let stats = ask(&sock, Command::Stats).data.unwrap();
    assert_eq!(stats["draining"], true);
    assert_eq!(ask(&sock, Command::Version).data.unwrap()["draining"], true);
    // A reload leaves the drain as it is: it is the operator's, not the file's.
    std::fs::write(
        &path,
        format!("{}\n{probe}", config(&dir.socket(), DENY_SMTP)),
    )
    .unwrap();
    assert!(ask(&sock, Command::Reload).ok);
    assert!(flag.load(std::sync::atomic::Ordering::SeqCst));
    let r = ask(&sock, Command::Resume).data.unwrap();
    assert_eq!(
        (&r["draining"], &r["changed"]),
        (&false.into(), &true.into())
    );
    assert!(!flag.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(ask(&sock, Command::Stats).data.unwrap()["draining"], false);
    bg.stop();
}

#[test]
fn sighup_reloads_at_the_next_tick() {
    let dir = Scratch::new("sighup");
    let (path, mut control) = start(&dir, &config("socket = \"\"", ""));
    control.reload_on_sighup().unwrap();
    std::fs::write(&path, config("socket = \"\"", DENY_SMTP)).unwrap();
    signal_hook::low_level::raise(signal_hook::consts::SIGHUP).unwrap();
    assert!(control.reload_requested());
    let v = FakeView::default();
    control.tick(&v);
    assert!(!control.reload_requested());
    assert_eq!(control.generation(), 2);
    assert_eq!(control.current().egress.len(), 1);
}

#[test]
fn watched_file_reloads_when_it_changes() {
    let dir = Scratch::new("watch");
    let (path, mut control) = start(&dir, &config("socket = \"\"\nwatch_config = true", ""));
    let v = FakeView::default();
    std::thread::sleep(WATCH_INTERVAL + Duration::from_millis(100));
    control.tick(&v);
    assert_eq!(control.generation(), 1, "unchanged file: no reload");
    std::fs::write(
        &path,
        config("socket = \"\"\nwatch_config = true", DENY_SMTP),
    )
    .unwrap();
    std::thread::sleep(WATCH_INTERVAL + Duration::from_millis(100));
    control.tick(&v);
    assert_eq!(control.generation(), 2);
    // A bad edit is refused once, not every second.
    std::fs::write(&path, "broken = [").unwrap();
    std::thread::sleep(WATCH_INTERVAL + Duration::from_millis(100));
    control.tick(&v);
    std::thread::sleep(WATCH_INTERVAL + Duration::from_millis(100));
    control.tick(&v);
    assert_eq!(control.generation(), 2);
    assert_eq!(control.reloads(), ReloadCounts { ok: 1, failed: 1 });
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET / over plain TCP; returns the body.
fn scrape(addr: std::net::SocketAddr) -> String {
    let mut s = std::net::TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP reply");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// The value of the sample line that starts with `series ` in a Prometheus text body.
fn sample(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{body}"))
        .trim()
        .parse()
        .unwrap()
}

/// Each series has its value in a Prometheus text body.
fn samples(body: &str, want: &[(&str, f64)]) {
    for &(series, value) in want {
        assert_eq!(sample(body, series), value, "{series}");
    }
}

#[test]
fn prometheus_endpoint_serves_the_snapshot() {
    let dir = Scratch::new("prom");
    let port = free_port();
    let (_path, mut control) = start(
        &dir,
        &config(
            &format!("socket = \"\"\nmetrics = \"127.0.0.1:{port}\""),
            "",
        ),
    );
    let addr = control.metrics_address().unwrap();
    assert_eq!(addr.port(), port);
    let view = FakeView::new(testing::snapshot(1), vec![]);
    control.tick(&view); // the first tick publishes
    let body = scrape(addr);
    for (name, ..) in metrics::METRICS {
        assert!(body.contains(name), "{name} not served");
    }
    assert!(body.contains("# HELP nva_drops_total"), "{body}");
    assert!(body.contains("# TYPE nva_drops_total counter"), "{body}");
    assert!(body.contains("# TYPE nva_sessions gauge"), "{body}");
    samples(
        &body,
        &[
            ("nva_port_rx_packets_total{port=\"wan\"}", 2000.0),
            ("nva_drops_total{reason=\"policy_deny\"}", 3.0),
            ("nva_sessions{class=\"udp\"}", 4.0),
            ("nva_worker_cycles_per_packet{worker=\"1\"}", 150.0),
            (
                "nva_nat_ports_in_use{address=\"192.0.2.2\",proto=\"tcp\"}",
                11.0,
            ),
            ("nva_policy_generation", 1.0),
            ("nva_link_up{port=\"lan\"}", 1.0),
        ],
    );

    // A second snapshot moves the values; a reload moves its counter.
    let mut next = testing::snapshot(3);
    next.ports[0].link_up = false;
    view.set(next);
    control.reload().unwrap();
    control.publish(&view);
    let body = scrape(addr);
    samples(
        &body,
        &[
            ("nva_port_rx_packets_total{port=\"wan\"}", 6000.0),
            ("nva_drops_total{reason=\"policy_deny\"}", 9.0),
            ("nva_sessions_created_total", 60.0),
            ("nva_link_up{port=\"lan\"}", 0.0),
            ("nva_reloads_total{result=\"ok\"}", 1.0),
            ("nva_policy_generation", 2.0),
        ],
    );
    // The same series and values as the scrape (the exporter orders them freely).
    let sorted = |t: &str| {
        let mut l: Vec<String> = t.lines().map(String::from).collect();
        l.sort();
        l
    };
    assert_eq!(sorted(&control.render_metrics().unwrap()), sorted(&body));

    // A second endpoint on the same address is refused with the field named.
    let text = config(
        &format!("socket = \"\"\nmetrics = \"127.0.0.1:{port}\""),
        "",
    );
    let err = Control::new(dir.path("other.toml"), Config::parse(&text, "x").unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("control.metrics"), "{err}");

    // Dropping the control thread closes the port.
    drop(control);
    let closed = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        std::net::TcpStream::connect(addr).is_err()
    });
    assert!(closed, "port still open 5 s after the exporter dropped");
}

#[test]
fn a_second_appliance_on_the_same_socket_is_refused() {
    let dir = Scratch::new("twice");
    let (_path, control) = start(&dir, &config(&dir.socket(), ""));
    let text = config(&dir.socket(), "");
    let err = Control::new(dir.path("other.toml"), Config::parse(&text, "x").unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("control.socket"), "{err}");
    assert!(err.contains("another appliance"), "{err}");
    drop(control);
}
