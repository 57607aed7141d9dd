//! The network-namespace testbed (`testbed/up.sh`, `servers.sh`, `kernel-nat.sh`) driven from
//! Rust for the end-to-end tests: one private copy per test (its own namespace names), torn
//! down by `testbed/down.sh` when the [`Testbed`] drops, also when the test panics.
//!
//! Two modes run the same tests:
//! - [`Mode::Appliance`]: `appliance run` in the `fw` namespace, AF_PACKET on `lan` and `wan`,
//!   which stay unaddressed with forwarding off.
//! - [`Mode::Kernel`]: `testbed/kernel-nat.sh` turns `fw` into Linux forwarding + nftables
//!   NAT with the same policy: the reference the tests are validated against, and the
//!   baseline the appliance is compared with.
//!
//! `NVA_E2E_MODE=kernel|appliance|both` picks them (default `appliance`);
//! `NVA_APPLIANCE=PATH` runs another build of the binary (a release build for figures).
//! Every command runs under `timeout`; processes the tests start are ended by their PID.
#![allow(dead_code)]

use crate::common::{is_root, require, sh_quiet};
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Public address of the appliance (its wan port; the SNAT pool).
pub const PUBLIC: &str = "192.0.2.2";
/// The appliance's inside address, the inside hosts' gateway.
pub const INSIDE_GW: &str = "10.0.1.1";
/// The router between the appliance and the servers.
pub const ROUTER: &str = "192.0.2.1";
/// Inside hosts.
pub const C1: &str = "10.0.1.10";
pub const C2: &str = "10.0.1.11";
/// The server's two addresses (two networks behind the router).
pub const SRV1: &str = "203.0.113.10";
pub const SRV2: &str = "198.51.100.10";
/// The port forward: `PUBLIC:FORWARD_PORT` -> `C2:80`.
pub const FORWARD_PORT: u16 = 8080;
/// A UDP port nothing listens on at the server.
pub const CLOSED_UDP_PORT: u16 = 9;

/// What plays the appliance in the `fw` namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Linux forwarding and nftables (`testbed/kernel-nat.sh`).
    Kernel,
    /// `appliance run --config configs/testbed.toml` on AF_PACKET.
    Appliance,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Kernel => "kernel",
            Mode::Appliance => "appliance",
        })
    }
}

/// The modes `NVA_E2E_MODE` asks for.
pub fn modes() -> Vec<Mode> {
    match std::env::var("NVA_E2E_MODE").as_deref() {
        Ok("kernel") => vec![Mode::Kernel],
        Ok("both") => vec![Mode::Kernel, Mode::Appliance],
        Ok("appliance") | Ok("") | Err(_) => vec![Mode::Appliance],
        Ok(other) => panic!("NVA_E2E_MODE={other:?}: use kernel, appliance or both"),
    }
}

/// Whether the e2e tests can run here; prints why not. They need root (namespaces) and the
/// programs `scripts/deps.sh` installs; a missing program fails the test (CI installs them).
pub fn can_run(test: &str) -> bool {
    if !require(test, "root (network namespaces, veths)", is_root()) {
        return false;
    }
    let missing: Vec<&str> = [
        "ip",
        "ethtool",
        "nft",
        "nginx",
        "dnsmasq",
        "iperf3",
        "curl",
        "dig",
        "nmap",
        "traceroute",
        "tcpdump",
        "ping",
        "timeout",
        "sha256sum",
    ]
    .into_iter()
    .filter(|p| {
        !Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {p}"))
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    })
    .collect();
    assert!(
        missing.is_empty(),
        "{test}: programs missing: {}; run scripts/deps.sh (as root) to install them",
        missing.join(" ")
    );
    true
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The appliance binary: `NVA_APPLIANCE`, else the one cargo built for this test run.
pub fn appliance_bin() -> PathBuf {
    std::env::var_os("NVA_APPLIANCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_appliance")))
}

/// One testbed at a time in this process: the tests measure throughput on a 2-core machine.
static SERIAL: Mutex<()> = Mutex::new(());
static COUNT: AtomicUsize = AtomicUsize::new(0);

/// How a test wants its testbed.
#[derive(Debug, Clone)]
pub struct Options {
    /// Worker lcores for the appliance (1 or 2). Kernel mode: 2 turns on RPS on the fw
    /// namespace's veths (packet processing on both cores), the kernel's equivalent.
    pub workers: usize,
    /// Use huge pages when the machine has them (the kill test checks none leak).
    pub huge_pages: bool,
    /// Which network `testbed/up.sh` builds.
    pub topology: Topology,
    /// TOML appended to the appliance's configuration, every time it is written (appliance
    /// mode): a `[local.health_probe]`, say.
    pub config: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            workers: 1,
            huge_pages: false,
            topology: Topology::Single,
            config: Vec::new(),
        }
    }
}

/// The testbed's network (`NVA_TOPOLOGY` of `testbed/up.sh`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// One appliance (`fw`) between the inside segment and the router.
    Single,
    /// Two appliances in NAT mode (`fw1`, `fw2`: `configs/ecmp-a.toml`, `ecmp-b.toml`)
    /// behind an inside router (`rtr`) that spreads flows over them with ECMP.
    Ecmp,
    /// Two appliances in GENEVE tunnel mode (`configs/testbed-gwlb-a.toml`, `-b.toml`)
    /// behind `testbed/gwlb-emu.py` in `rtr`, AWS's gateway load balancer.
    Gwlb,
    /// One appliance in VXLAN tunnel mode (`configs/testbed-vxlan.toml`) behind Linux VXLAN
    /// devices in `rtr`, Azure's gateway load balancer chain.
    Vxlan,
}

impl Topology {
    fn name(self) -> &'static str {
        match self {
            Topology::Single => "single",
            Topology::Ecmp => "ecmp",
            Topology::Gwlb => "gwlb",
            Topology::Vxlan => "vxlan",
        }
    }
}

/// One appliance of a topology with several (`fw1`, `fw2`): its namespace, its config, its
/// child (an index of [`Testbed::spawn`]).
#[derive(Debug, Clone)]
pub struct Instance {
    pub ns: String,
    pub config: PathBuf,
    child: usize,
}

/// A testbed of its own for one test in one mode; removed on drop.
pub struct Testbed {
    pub mode: Mode,
    /// Namespace name prefix (`nve-<pid>-<n>-`): `{prefix}c1`, `{prefix}fw`, ...
    pub prefix: String,
    /// The servers' folder (logs, served files, PID files) and the appliance's files.
    pub run: PathBuf,
    /// Appliance mode: the config file the appliance runs with (reload rewrites it).
    pub config: PathBuf,
    pub options: Options,
    appliance: Option<Child>,
    /// The appliances of a topology with several.
    pub instances: Vec<Instance>,
    /// The GENEVE load balancer emulator (gwlb topology): an index of [`Testbed::spawn`].
    pub emulator: Option<usize>,
    starts: usize,
    children: Vec<Child>,
    test: String,
    _serial: MutexGuard<'static, ()>,
}

impl fmt::Debug for Testbed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Testbed({} {})", self.mode, self.prefix)
    }
}

impl Testbed {
    /// Brings up a private testbed and its servers; in kernel mode installs the nftables NAT,
    /// in appliance mode starts the appliance. Does not wait for traffic to pass: see
    /// [`Testbed::wait_ready`].
    pub fn up(mode: Mode, test: &str, options: Options) -> Testbed {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let n = COUNT.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("nve-{}-{n}-", std::process::id() % 100_000);
        let run = PathBuf::from(format!("/run/nva-testbed/{}", prefix.trim_end_matches('-')));
        let mut tb = Testbed {
            mode,
            prefix,
            config: run.join("appliance.toml"),
            run,
            options,
            appliance: None,
            instances: Vec::new(),
            emulator: None,
            starts: 0,
            children: Vec::new(),
            test: test.to_string(),
            _serial: serial,
        };
        println!("== {test} [{mode}] testbed {}*", tb.prefix);
        tb.script("up.sh", &[]);
        tb.script("servers.sh", &[]);
        match (mode, tb.options.topology) {
            (Mode::Kernel, t @ (Topology::Ecmp | Topology::Gwlb | Topology::Vxlan)) => {
                panic!("{test}: kernel mode has the single topology only, not {t:?}")
            }
            (Mode::Appliance, Topology::Ecmp) => {
                tb.start_instances(&[
                    ("configs/ecmp-a.toml", "fw1"),
                    ("configs/ecmp-b.toml", "fw2"),
                ]);
            }
            (Mode::Appliance, Topology::Gwlb) => {
                tb.start_instances(&[
                    ("configs/testbed-gwlb-a.toml", "fw1"),
                    ("configs/testbed-gwlb-b.toml", "fw2"),
                ]);
                tb.start_gwlb_emulator();
            }
            (Mode::Appliance, Topology::Vxlan) => {
                tb.start_instances(&[("configs/testbed-vxlan.toml", "fw1")]);
            }
            (Mode::Kernel, Topology::Single) => {
                tb.script("kernel-nat.sh", &["on"]);
                if tb.options.workers > 1 {
                    // Receive packet steering over both cores on the forwarding namespace.
                    for i in ["lan", "wan"] {
                        tb.ok(
                            "fw",
                            &format!("echo 3 > /sys/class/net/{i}/queues/rx-0/rps_cpus"),
                            5,
                        );
                    }
                }
            }
            (Mode::Appliance, Topology::Single) => {
                tb.write_config(&[]);
                tb.start_appliance();
            }
        }
        tb
    }

    /// Starts one appliance per `(config template, namespace)`: the config written to
    /// `<namespace>.toml` in the run folder ([`Testbed::write_config_from`]), its log to
    /// `appliance-<namespace>.log`.
    fn start_instances(&mut self, list: &[(&str, &str)]) {
        for &(template, ns) in list {
            let config = self.run.join(format!("{ns}.toml"));
            self.write_config_from(template, &config, &[]);
            let bin = appliance_bin();
            let argv = [
                bin.to_str().expect("UTF-8 path"),
                "run",
                "--json",
                "--config",
                config.to_str().expect("UTF-8 path"),
            ];
            let child = self.spawn(ns, &argv, &format!("appliance-{ns}.log"));
            self.instances.push(Instance {
                ns: ns.to_string(),
                config,
                child,
            });
        }
        std::thread::sleep(Duration::from_millis(300));
        self.check_appliance_alive();
    }

    /// Starts `testbed/gwlb-emu.py` in `rtr` (the gwlb topology's load balancer) over the
    /// appliances at 10.0.9.11 and 10.0.9.12, probing `/healthz` every half second, its
    /// status in `gwlb-status.json`; its stdout (health changes) is [`Testbed::lines`] of
    /// [`Testbed::emulator`].
    fn start_gwlb_emulator(&mut self) {
        let emu = repo().join("testbed/gwlb-emu.py");
        let status = self.run.join("gwlb-status.json");
        let argv = [
            "python3",
            emu.to_str().expect("UTF-8 path"),
            "--local",
            "10.0.9.1",
            "--appliance",
            "10.0.9.11",
            "--appliance",
            "10.0.9.12",
            "--probe-path",
            "/healthz",
            "--probe-interval",
            "0.5",
            "--status",
            status.to_str().expect("UTF-8 path"),
        ];
        self.emulator = Some(self.spawn("rtr", &argv, "gwlb-emu.log"));
    }

    /// The GENEVE emulator's status file, parsed (gwlb topology).
    pub fn gwlb_status(&self) -> serde_json::Value {
        let text = self.read("gwlb-status.json");
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: gwlb-status.json is not JSON ({e}): {text}", self.test))
    }

    /// SIGKILL to the appliance in namespace `ns` (one of several), as a crash.
    pub fn kill_instance(&mut self, ns: &str) {
        let i = self
            .instances
            .iter()
            .position(|i| i.ns == ns)
            .unwrap_or_else(|| panic!("no appliance in {ns}"));
        let instance = self.instances.remove(i);
        let child = &mut self.children[instance.child];
        let _ = child.kill();
        let _ = child.wait();
    }

    /// A namespace's full name: `ns("c1")`.
    pub fn ns(&self, host: &str) -> String {
        format!("{}{host}", self.prefix)
    }

    fn script(&self, name: &str, args: &[&str]) {
        let out = Command::new("timeout")
            .args(["-k", "5", "60"])
            .arg(repo().join("testbed").join(name))
            .args(args)
            .env("NVA_PREFIX", &self.prefix)
            .env("NVA_RUN", &self.run)
            .env("NVA_TOPOLOGY", self.options.topology.name())
            .output()
            .expect("spawn testbed script");
        assert!(
            out.status.success(),
            "testbed/{name} {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `cmd` with `sh -c` in namespace `host`, killed after `secs` seconds.
    pub fn exec(&self, host: &str, cmd: &str, secs: u64) -> Output {
        Command::new("timeout")
            .args(["-k", "2", &secs.to_string(), "ip", "netns", "exec"])
            .arg(self.ns(host))
            .args(["sh", "-c", cmd])
            .stdin(Stdio::null())
            .output()
            .expect("spawn ip netns exec")
    }

    /// [`Testbed::exec`] that must succeed; returns stdout.
    pub fn ok(&self, host: &str, cmd: &str, secs: u64) -> String {
        let out = self.exec(host, cmd, secs);
        assert!(
            out.status.success(),
            "[{}] in {host}: `{cmd}` failed ({}{}):\nstdout:\n{}\nstderr:\n{}{}",
            self.mode,
            out.status,
            if out.status.code() == Some(124) {
                format!(", timed out after {secs} s")
            } else {
                String::new()
            },
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.appliance_hint()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts a long-running program in namespace `host` (no shell: `ip netns exec` execs it,
    /// so the child's PID is the program's), stdout piped, stderr to `stderr_file` in the run
    /// folder. Ended by PID when the testbed drops.
    pub fn spawn(&mut self, host: &str, argv: &[&str], stderr_file: &str) -> usize {
        let err = std::fs::File::create(self.run.join(stderr_file)).expect("stderr file");
        let child = Command::new("ip")
            .args(["netns", "exec"])
            .arg(self.ns(host))
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {argv:?} in {host}: {e}"));
        self.children.push(child);
        self.children.len() - 1
    }

    /// A child started with [`Testbed::spawn`].
    pub fn child(&mut self, i: usize) -> &mut Child {
        &mut self.children[i]
    }

    /// Sends `signal` (e.g. "INT") to a spawned child by its PID and waits for it, at most
    /// `secs` seconds (then SIGKILL).
    pub fn signal_and_wait(&mut self, i: usize, signal: &str, secs: u64) -> ExitStatus {
        let child = &mut self.children[i];
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status();
        wait_child(child, Duration::from_secs(secs))
    }

    /// Reads the lines of a spawned child's stdout on a thread: `(seconds since now, line)`.
    pub fn lines(&mut self, i: usize) -> mpsc::Receiver<(f64, String)> {
        let out = self.children[i].stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        let start = Instant::now();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send((start.elapsed().as_secs_f64(), line)).is_err() {
                    break;
                }
            }
        });
        rx
    }

    /// Waits until both inside hosts reach the server through the appliance (ping), at most
    /// 20 s; otherwise fails with what does and does not answer, and the appliance's log.
    pub fn wait_ready(&mut self) {
        let start = Instant::now();
        let ping = |tb: &Testbed, host: &str, dst: &str| {
            tb.exec(host, &format!("ping -c 1 -W 1 {dst}"), 4)
                .status
                .success()
        };
        let mut ready = false;
        while start.elapsed() < Duration::from_secs(20) {
            self.check_appliance_alive();
            if ping(self, "c1", SRV1) && ping(self, "c2", SRV1) {
                ready = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        if !ready {
            let gw = ping(self, "c1", INSIDE_GW);
            let public = ping(self, "inet", PUBLIC);
            panic!(
                "[{}] {}: the inside hosts cannot reach {SRV1} through the appliance within 20 s \
                 (ping c1 -> {INSIDE_GW} (the appliance's inside address): {}; ping router -> \
                 {PUBLIC} (its public address): {}).{}{}",
                self.mode,
                self.test,
                if gw { "answered" } else { "no answer" },
                if public { "answered" } else { "no answer" },
                if self.mode == Mode::Appliance {
                    " Appliance mode needs the stateful pipeline in `appliance run` (ARP for its \
                     addresses, SNAT, replies): a binary that only forwards at layer 2 passes \
                     nothing in this routed testbed."
                } else {
                    ""
                },
                self.appliance_hint()
            );
        }
        println!("   ready after {:.1} s", start.elapsed().as_secs_f64());
    }

    /// Takes the appliance down abruptly: SIGKILL (appliance mode), or the NAT torn down
    /// with no rules, addresses or forwarding left (kernel mode).
    pub fn crash(&mut self) {
        match self.mode {
            Mode::Appliance => self.kill_appliance(),
            Mode::Kernel => self.script("kernel-nat.sh", &["off"]),
        }
    }

    /// Brings the appliance back after [`Testbed::crash`].
    pub fn restart(&mut self) {
        match self.mode {
            Mode::Appliance => self.start_appliance(),
            Mode::Kernel => self.script("kernel-nat.sh", &["on"]),
        }
    }

    // ---- the appliance (appliance mode) ----

    /// Writes the appliance's config: configs/testbed.toml with this testbed's file prefix,
    /// control socket and worker count, plus `extra` TOML appended (rules for a reload).
    pub fn write_config(&self, extra: &[&str]) {
        self.write_config_from("configs/testbed.toml", &self.config, extra);
    }

    /// Writes `template` (a config of the repository) to `dest` as [`Testbed::write_config`]
    /// does, with a file prefix and a control socket of its own (named after `dest`), and
    /// checks it with `appliance check`.
    pub fn write_config_from(&self, template: &str, dest: &Path, extra: &[&str]) {
        let base = std::fs::read_to_string(repo().join(template))
            .unwrap_or_else(|e| panic!("read {template}: {e}"));
        let stem = dest.file_stem().and_then(|s| s.to_str()).unwrap_or("nva");
        let name = format!("{}-{stem}", self.prefix.trim_end_matches('-'));
        let socket = if dest == self.config.as_path() {
            self.run.join("control.sock")
        } else {
            self.run.join(format!("{stem}.sock"))
        };
        let mut text = replace_line(
            &base,
            "file_prefix = ",
            &format!("file_prefix = \"{name}\""),
        );
        text = replace_line(
            &text,
            "socket = ",
            &format!("socket = \"{}\"", socket.display()),
        );
        if self.options.huge_pages && crate::common::hugepages_available() {
            text = replace_line(&text, "huge_pages = ", "huge_pages = true");
        }
        if self.options.workers == 2 {
            // Two worker lcores sharing core 1, the control lcore on core 0. Queues stay at
            // their default (one per worker); net_af_packet needs qpairs=2 to have two.
            text = replace_line(&text, "lcores = ", "lcores = \"0@0,1@1,2@1\"");
            text = text
                .replace("iface=lan\"", "iface=lan,qpairs=2\"")
                .replace("iface=wan\"", "iface=wan,qpairs=2\"");
        }
        for e in self
            .options
            .config
            .iter()
            .map(String::as_str)
            .chain(extra.iter().copied())
        {
            text.push('\n');
            text.push_str(e);
            text.push('\n');
        }
        std::fs::create_dir_all(&self.run).expect("run folder");
        std::fs::write(dest, &text).expect("write appliance config");
        let out = Command::new(appliance_bin())
            .args(["check", "--config"])
            .arg(dest)
            .output()
            .expect("spawn appliance check");
        assert!(
            out.status.success(),
            "appliance check refused the test config {}:\n{}{}",
            dest.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts `appliance run` in the fw namespace (stdout/stderr to appliance.out/.log).
    pub fn start_appliance(&mut self) {
        self.starts += 1;
        let n = self.starts;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.run.join("appliance.log"))
            .expect("appliance log");
        let out = std::fs::File::create(self.run.join(format!("appliance-{n}.out")))
            .expect("appliance out");
        let child = Command::new("ip")
            .args(["netns", "exec"])
            .arg(self.ns("fw"))
            .arg(appliance_bin())
            .args(["run", "--json", "--config"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(log)
            .spawn()
            .expect("spawn appliance");
        self.appliance = Some(child);
        // It must come up: EAL, ports, then the control socket once the pipeline has one.
        std::thread::sleep(Duration::from_millis(300));
        self.check_appliance_alive();
    }

    /// Fails the test (with the log) when the appliance has exited.
    pub fn check_appliance_alive(&mut self) {
        for i in 0..self.instances.len() {
            let (ns, child) = (self.instances[i].ns.clone(), self.instances[i].child);
            if let Ok(Some(status)) = self.children[child].try_wait() {
                let log = self.read(&format!("appliance-{ns}.log"));
                panic!(
                    "[{}] {}: the appliance in {ns} exited ({status}); its log:\n{log}",
                    self.mode, self.test
                );
            }
        }
        if let Some(c) = self.appliance.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                self.appliance = None;
                panic!(
                    "[{}] {}: the appliance exited ({status}).{}",
                    self.mode,
                    self.test,
                    self.appliance_hint()
                );
            }
        }
    }

    /// SIGKILL to the appliance (by its PID), as a crash.
    pub fn kill_appliance(&mut self) {
        if let Some(mut c) = self.appliance.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `signal` (e.g. "TERM") to the appliance by its PID, without waiting.
    pub fn signal_appliance(&mut self, signal: &str) {
        if let Some(c) = self.appliance.as_ref() {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(c.id().to_string())
                .status();
        }
    }

    /// Waits at most `timeout` for the appliance to exit by itself: its status, or `None`
    /// when it still runs (it is left running).
    pub fn wait_appliance(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(c) = self.appliance.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.appliance = None;
                    return Some(status);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGTERM and wait (at most 20 s); returns the exit status.
    pub fn stop_appliance(&mut self) -> Option<ExitStatus> {
        self.appliance.take().map(|mut c| {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            wait_child(&mut c, Duration::from_secs(20))
        })
    }

    /// The last lines of the appliance's log, for failure messages (empty in kernel mode).
    pub fn appliance_hint(&self) -> String {
        if self.mode != Mode::Appliance {
            return String::new();
        }
        let log = std::fs::read_to_string(self.run.join("appliance.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "\nappliance: {} --config {}; last lines of its log:\n{}",
            appliance_bin().display(),
            self.config.display(),
            tail.join("\n")
        )
    }

    /// `appliance <cmd> --config FILE [args]` against the running appliance (control socket).
    pub fn control(&self, cmd: &str, args: &[&str]) -> Output {
        self.control_of(&self.config, cmd, args)
    }

    /// [`Testbed::control`] against the appliance running `config` (one of several).
    pub fn control_of(&self, config: &Path, cmd: &str, args: &[&str]) -> Output {
        Command::new("timeout")
            .args(["-k", "2", "30"])
            .arg(appliance_bin())
            .arg(cmd)
            .arg("--config")
            .arg(config)
            .args(["--timeout", "10"])
            .args(args)
            .output()
            .expect("spawn appliance control command")
    }

    /// [`Testbed::control`], failing the test clearly when the command fails.
    pub fn control_ok(&self, cmd: &str, args: &[&str]) -> Output {
        self.control_ok_of(&self.config, cmd, args)
    }

    /// [`Testbed::control_ok`] against the appliance running `config` (one of several).
    pub fn control_ok_of(&self, config: &Path, cmd: &str, args: &[&str]) -> Output {
        let out = self.control_of(config, cmd, args);
        assert!(
            out.status.success(),
            "[{}] {}: `appliance {cmd}{} --config {}` failed ({}): {}{}",
            self.mode,
            self.test,
            args.iter().map(|a| format!(" {a}")).collect::<String>(),
            config.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.appliance_hint()
        );
        out
    }

    /// `appliance stats --json`, parsed; fails the test clearly when it cannot be had.
    pub fn stats(&self) -> serde_json::Value {
        self.stats_of(&self.config)
    }

    /// [`Testbed::stats`] of the appliance running `config` (one of several).
    pub fn stats_of(&self, config: &Path) -> serde_json::Value {
        let out = self.control_ok_of(config, "stats", &["--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "appliance stats --json is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    // ---- policy changes, both modes ----

    /// Denies new egress flows to `prefix` from now on, and (recheck) stops open ones:
    /// appliance mode appends an egress deny rule to the config and runs `appliance reload`;
    /// kernel mode adds `prefix` to the nftables set `egress_deny`.
    pub fn deny_egress(&mut self, prefix: &str, extra_rules: &mut Vec<String>) {
        match self.mode {
            Mode::Kernel => self.script("kernel-nat.sh", &["deny", prefix]),
            Mode::Appliance => {
                extra_rules.push(format!(
                    "[[egress.rule]]\naction = \"deny\"\ndst = [\"{prefix}\"]\ncomment = \"e2e: denied by a reload\""
                ));
                let extra: Vec<&str> = extra_rules.iter().map(String::as_str).collect();
                self.write_config(&extra);
                self.control_ok("reload", &[]);
            }
        }
    }

    /// Reads a file of the run folder (server logs).
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.run.join(name)).unwrap_or_default()
    }

    /// How many lines a file of the run folder has now: take it before the requests whose
    /// log lines `log_after` then waits for.
    pub fn lines_in(&self, name: &str) -> usize {
        self.read(name).lines().count()
    }

    /// A server log once it holds `new` lines more than `before`. A server writes its access
    /// log line after the response has left (nginx's log phase), so the client can be done
    /// before the line exists: wait for it, at most 5 s, then fail naming the file.
    pub fn log_after(&self, name: &str, before: usize, new: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.read(name);
            let have = log.lines().count();
            if have >= before + new {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "[{}] {name}: {} new lines after 5 s, {new} expected:\n{log}",
                self.mode,
                have.saturating_sub(before)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if let Some(mut c) = self.appliance.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let _ = wait_child(&mut c, Duration::from_secs(10));
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let down = repo().join("testbed/down.sh");
        sh_quiet(&format!(
            "NVA_PREFIX={} NVA_RUN={} timeout -k 5 60 {}",
            self.prefix,
            self.run.display(),
            down.display()
        ));
    }
}

/// Waits for a child at most `timeout`, then kills it (SIGKILL, by its PID).
pub fn wait_child(child: &mut Child, timeout: Duration) -> ExitStatus {
    let end = Instant::now() + timeout;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return s;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            return child.wait().expect("wait child");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Replaces the first line that starts with `start` (after indentation) by `with`; panics
/// when there is none, so a reshaped configs/testbed.toml is noticed here.
fn replace_line(text: &str, start: &str, with: &str) -> String {
    let mut done = false;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if !done && l.trim_start().starts_with(start) {
                done = true;
                with.to_string()
            } else {
                l.to_string()
            }
        })
        .collect();
    assert!(
        done,
        "configs/testbed.toml has no line starting with `{start}`"
    );
    out.join("\n") + "\n"
}

/// Namespaces whose name starts with `prefix`.
pub fn namespaces_with(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Prints a figure for the closing note, as one greppable line.
pub fn figure(mode: Mode, test: &str, text: &str) {
    println!("FIGURE [{mode}] {test}: {text}");
}
