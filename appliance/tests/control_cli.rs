//! The control CLI through the real binary: `check` on every shipped config and on bad
//! files; `stats`, `sessions`, `reload`, `policy`, `drain` and `resume` against a control
//! loop served by this test process (a `Control` with a fake data path: no DPDK needed).

mod common;
use appliance::config::Config;
use appliance::control::Control;
use appliance::testing::control::{self as testing, Background, FakeView};
use appliance::testing::PORTS;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn run(args: &[&str]) -> Output {
    let out = appliance().args(args).output().expect("spawn appliance");
    assert!(
        !stderr(&out).contains("panicked"),
        "{args:?}: {}",
        stderr(&out)
    );
    out
}

/// Runs and expects `code`; returns the output.
fn expect(args: &[&str], code: i32) -> Output {
    let out = run(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}\nstdout:\n{}\nstderr:\n{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

#[test]
fn check_passes_on_every_shipped_config() {
    let mut seen = 0;
    for entry in std::fs::read_dir(configs_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = expect(&["check", "--config", path.to_str().unwrap()], 0);
            let text = stdout(&out);
            assert!(text.contains(": ok ("), "{text}");
            for section in ["snat:", "egress:", "ingress:", "forwards:", "control:"] {
                assert!(
                    text.contains(section),
                    "{}: no {section}\n{text}",
                    path.display()
                );
            }
            seen += 1;
        }
    }
    assert!(
        seen >= 4,
        "configs/ has default, example-policy, testbed, cloud-one-arm"
    );
}

#[test]
fn check_lists_every_error_with_file_field_and_value() {
    let dir = scratch("cli-check");
    let text = r#"
[eal]
lcores = "0-1"
memory_mb = 8

[[port]]
name = "lan"
role = "inside"
device = "net_null0"
address = "10.0.1.0/24"

[[port]]
name = "wan"
role = "outside"
device = "net_null1"

[egress]
[[egress.rule]]
action = "deny"
dst = ["10.0.0.1/8"]

[control]
socket = "relative.sock"
metrics = "localhost:80"
"#;
    let bad = write(&dir, "bad.toml", text);
    let out = expect(&["check", "--config", bad.to_str().unwrap()], 2);
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    for (field, value) in [
        ("eal.memory_mb", "8"),
        ("port[0].address", "10.0.1.0/24"),
        ("egress.rule[0].dst[0]", "10.0.0.1/8"),
        ("control.socket", "relative.sock"),
        ("control.metrics", "localhost:80"),
    ] {
        assert!(
            lines.iter().any(|l| l.contains(bad.to_str().unwrap())
                && l.contains(field)
                && l.contains(value)),
            "no line for {field} = {value} in\n{err}"
        );
    }
    assert!(lines.len() >= 5, "{err}");
    assert!(stdout(&out).is_empty());

    // Syntax: one line with the line number; a missing file: the path.
    let syntax = write(
        &dir,
        "syntax.toml",
        "[eal]\nlcores = \"0-1\"\nhuge_pages = maybe\n",
    );
    let out = expect(&["check", "--config", syntax.to_str().unwrap()], 2);
    assert!(stderr(&out).contains("syntax.toml:3"), "{}", stderr(&out));
    let out = expect(&["check", "--config", "/nonexistent/x.toml"], 2);
    assert!(stderr(&out).contains("/nonexistent/x.toml"));
}

/// The topology's ports, with the control socket at `socket` ("" for none).
fn config(socket: &str) -> String {
    format!("{PORTS}\n[control]\nsocket = {socket:?}\n")
}

/// A control loop with a fake data path, serving a socket in a scratch folder.
struct Appliance {
    config: PathBuf,
    socket: PathBuf,
    text: String,
    loop_: Option<Background>,
}

impl Appliance {
    fn start(name: &str) -> Appliance {
        let dir = scratch(name);
        let socket = dir.join("control.sock");
        let text = config(socket.to_str().unwrap());
        let config = write(&dir, "appliance.toml", &text);
        let control = Control::new(&config, Config::load(&config).unwrap()).unwrap();
        let view = Arc::new(FakeView::new(testing::snapshot(1), testing::sessions()));
        Appliance {
            config,
            socket,
            text,
            loop_: Some(Background::start(control, view)),
        }
    }

    fn sock(&self) -> &str {
        self.socket.to_str().unwrap()
    }

    fn generation(mut self) -> u64 {
        self.loop_.take().unwrap().stop().unwrap().generation()
    }
}

#[test]
fn stats_sessions_policy_over_the_socket() {
    let a = Appliance::start("cli-stats");
    let s = a.sock();

    let out = expect(&["stats", "--socket", s], 0);
    let t = stdout(&out);
    for needle in [
        "policy generation 1",
        "lan",
        "wan",
        "policy_deny",
        "sessions: 16 active",
    ] {
        assert!(t.contains(needle), "{needle:?} not in\n{t}");
    }
    // --json is the raw data; --config finds the socket in the file.
    let out = expect(
        &["stats", "--config", a.config.to_str().unwrap(), "--json"],
        0,
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ports"][0]["name"], "lan");
    assert_eq!(v["drops"]["no_forward"], 5);

    let out = expect(&["sessions", "--socket", s], 0);
    assert!(stdout(&out).contains("3 session(s)"), "{}", stdout(&out));
    let out = expect(&["sessions", "-s", s, "--filter", "proto udp"], 0);
    let t = stdout(&out);
    assert!(
        t.contains("192.0.2.53:53") && t.contains("1 session(s)"),
        "{t}"
    );
    let out = expect(&["sessions", "-s", s, "-f", "port 443", "--json"], 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(v["sessions"][0]["proto"], "tcp");
    let out = expect(&["sessions", "-s", s, "--limit", "1"], 0);
    assert!(stdout(&out).contains("more match"), "{}", stdout(&out));

    let out = expect(&["policy", "--socket", s], 0);
    let t = stdout(&out);
    assert!(
        t.contains("policy generation 1 from") && t.contains("192.0.2.2/24"),
        "{t}"
    );
    let out = expect(&["policy", "--socket", s, "--json"], 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["ports"][1]["name"], "wan");
}

#[test]
fn drain_and_resume_over_the_socket() {
    let a = Appliance::start("cli-drain");
    let s = a.sock();
    let out = expect(&["drain", "--socket", s], 0);
    let t = stdout(&out);
    assert!(
        t.starts_with("draining: ") && t.contains("traffic keeps flowing"),
        "{t}"
    );
    let out = expect(&["drain", "--socket", s, "--json"], 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&v["draining"], &v["changed"]),
        (&true.into(), &false.into())
    );
    assert!(stdout(&expect(&["stats", "--socket", s], 0)).contains("DRAINING"));
    let out = expect(&["resume", "--config", a.config.to_str().unwrap()], 0);
    assert!(stdout(&out).starts_with("serving"), "{}", stdout(&out));
    assert!(!stdout(&expect(&["stats", "--socket", s], 0)).contains("DRAINING"));
}

#[test]
fn bad_arguments_and_no_appliance_exit_2() {
    let a = Appliance::start("cli-args");
    let s = a.sock();
    for (args, needle) in [
        (
            vec!["sessions", "-s", s, "--filter", "colour red"],
            "unknown term",
        ),
        (vec!["sessions", "-s", s, "--limit", "0"], "limit"),
        (vec!["sessions", "-s", s, "--limit", "x"], "limit"),
        (
            vec!["stats", "--socket", "/nonexistent/control.sock"],
            "cannot reach the appliance",
        ),
        (
            vec!["stats", "-s", s, "-c", "/x.toml"],
            "cannot be used with",
        ),
        (
            vec!["stats", "--config", "/nonexistent/a.toml"],
            "/nonexistent/a.toml",
        ),
        (vec!["frobnicate"], "frobnicate"),
    ] {
        let out = expect(&args, 2);
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
    let dir = scratch("cli-nosock");
    let off = write(&dir, "off.toml", &config(""));
    let out = expect(&["reload", "--config", off.to_str().unwrap()], 2);
    assert!(
        stderr(&out).contains("no control socket"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn reload_answers_and_refusals_exit_1() {
    let a = Appliance::start("cli-reload");
    let s = a.sock();
    let out = expect(&["reload", "--socket", s], 0);
    assert!(
        stdout(&out).contains("policy generation 2 (was 1)"),
        "{}",
        stdout(&out)
    );

    // A bad file: exit 1, the error names the field; the running policy stays.
    std::fs::write(&a.config, a.text.replace("10.0.1.1/24", "10.0.1.1/33")).unwrap();
    let out = expect(&["reload", "--socket", s], 1);
    let err = stderr(&out);
    assert!(
        err.starts_with("error: reload refused, policy generation 2 stays"),
        "{err}"
    );
    assert!(err.contains("port[0].address"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");

    // A restart-only change: refused, naming the field.
    std::fs::write(&a.config, a.text.replace("net_null0", "net_null5")).unwrap();
    let out = expect(&["reload", "--config", a.config.to_str().unwrap()], 1);
    assert!(
        stderr(&out).contains("port[0].device cannot change without a restart"),
        "{}",
        stderr(&out)
    );
    let out = expect(&["stats", "--socket", s, "--json"], 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["reloads"]["ok"], 1);
    assert_eq!(v["reloads"]["failed"], 2);
    assert_eq!(a.generation(), 2);
}

/// Several `appliance reload` processes at once: each gets an answer, and the generation
/// grows by exactly the number of reloads.
#[test]
fn concurrent_reload_processes_are_serialised() {
    let a = Appliance::start("cli-concurrent");
    const N: usize = 6;
    let children: Vec<_> = (0..N)
        .map(|_| {
            appliance()
                .args(["reload", "--socket", a.sock(), "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut generations: Vec<u64> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            v["generation"].as_u64().unwrap()
        })
        .collect();
    generations.sort_unstable();
    assert_eq!(generations, (2..=1 + N as u64).collect::<Vec<_>>());
    assert_eq!(a.generation(), 1 + N as u64);
}
