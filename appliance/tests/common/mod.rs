//! Helpers shared by the integration tests: run the real `appliance` binary, write configs,
//! read and write pcap files, and build network namespaces that are removed even when a
//! test fails.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The appliance binary cargo built for this test run.
pub fn appliance() -> Command {
    Command::new(env!("CARGO_BIN_EXE_appliance"))
}

/// A fresh scratch directory under the target dir, unique per test.
pub fn scratch(name: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Writes `text` as `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write file");
    p
}

/// The ports of the DPDK tests without NICs, after no control socket: `in` (inside,
/// `net_null0`) and `out` (outside, `net_null1`), from `fixtures/null-ports.toml`, which
/// `benches/forwarding.sh` uses too. An `[eal]` section (and any other) before it completes a
/// configuration.
pub const NULL_PORTS: &str = concat!(
    "\n[control]\nsocket = \"\"\n",
    include_str!("../fixtures/null-ports.toml")
);

/// Runs `appliance run --config <path> --json` plus `extra`, and returns its output.
pub fn run_appliance(config: &Path, extra: &[&str]) -> Output {
    appliance()
        .arg("run")
        .arg("--config")
        .arg(config)
        .arg("--json")
        .args(extra)
        .output()
        .expect("spawn appliance")
}

/// Asserts success and parses the JSON report.
pub fn report(out: &Output) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "appliance failed: {:?}\nstderr:\n{stderr}",
        out.status
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "report is not JSON ({e}):\n{}\nstderr:\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A port's entry in the report.
pub fn port<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["ports"]
        .as_array()
        .expect("ports array")
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no port {name} in {report}"))
}

/// A counter of a port entry.
pub fn count(port: &serde_json::Value, field: &str) -> u64 {
    port[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {field} in {port}"))
}

/// Whether the test runs as root (namespaces, veths, huge pages need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|v| v.split_whitespace().next() == Some("0"))
        })
        .unwrap_or(false)
}

/// The variable that lets a test run without what it needs pass as skipped. Unset, such a
/// test fails and says what is missing, so a run that did not test says so.
pub const ALLOW_SKIP: &str = "NVA_TEST_ALLOW_SKIP";

/// Whether `test` can run: `have` says whether what it `needs` is here. If not, the test
/// fails with what is missing, unless [`ALLOW_SKIP`] is set to 1: then it prints that it was
/// skipped, and the caller returns.
///
/// # Panics
/// When `have` is false and skipping is not allowed.
pub fn require(test: &str, needs: &str, have: bool) -> bool {
    if have {
        return true;
    }
    if std::env::var(ALLOW_SKIP).as_deref() == Ok("1") {
        eprintln!("SKIPPED {test}: it needs {needs} ({ALLOW_SKIP}=1)");
        return false;
    }
    panic!("{test} needs {needs}: run it as root after `make hugepages` (or `make test`), or set {ALLOW_SKIP}=1 to skip it");
}

/// Free huge pages and a mounted hugetlbfs, as `appliance run` needs with huge pages on.
pub fn hugepages_available() -> bool {
    let free = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("HugePages_Free:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    free > 0 && !hugetlbfs_mounts().is_empty()
}

/// Where hugetlbfs is mounted.
pub fn hugetlbfs_mounts() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"hugetlbfs")).then(|| PathBuf::from(f[1]))
        })
        .collect()
}

/// Runs a command, panicking with its output when it fails.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("spawn sh");
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command, ignoring failure (clean-up).
pub fn sh_quiet(cmd: &str) {
    let _ = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Network namespaces created by a test; deleted on drop, also when the test panics.
#[derive(Debug, Default)]
pub struct Namespaces {
    names: Vec<String>,
    children: Vec<Child>,
}

impl Namespaces {
    /// Creates a namespace (removing a stale one of that name first) with loopback up.
    pub fn add(&mut self, name: &str) {
        sh_quiet(&format!("ip netns del {name}"));
        sh(&format!("ip netns add {name}"));
        self.names.push(name.to_string());
        sh(&format!("ip -n {name} link set lo up"));
    }

    /// Keeps a process to kill (by its own PID) before the namespaces go.
    pub fn own(&mut self, child: Child) -> usize {
        self.children.push(child);
        self.children.len() - 1
    }

    /// A process handed to `own`.
    pub fn child(&mut self, i: usize) -> &mut Child {
        &mut self.children[i]
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in &self.names {
            sh_quiet(&format!("ip netns del {n}"));
        }
    }
}

/// Waits until `f` holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// Sends SIGTERM to a child we started (by its PID) and waits for it.
pub fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    child.wait().expect("wait appliance")
}

/// Classic pcap (microsecond or nanosecond) files: enough to feed and read net_pcap.
pub mod pcap {
    use std::path::Path;

    /// Writes Ethernet frames as a microsecond pcap file.
    pub fn write(path: &Path, frames: &[Vec<u8>]) {
        let mut out = Vec::new();
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&0i32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&65535u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
        for (i, f) in frames.iter().enumerate() {
            out.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&(f.len() as u32).to_le_bytes());
            out.extend_from_slice(&(f.len() as u32).to_le_bytes());
            out.extend_from_slice(f);
        }
        std::fs::write(path, out).expect("write pcap");
    }

    /// Reads the frames of a pcap file (either timestamp precision, little endian).
    pub fn read(path: &Path) -> Vec<Vec<u8>> {
        let data = std::fs::read(path).expect("read pcap");
        assert!(data.len() >= 24, "{} is not a pcap file", path.display());
        let magic = u32::from_le_bytes(data[0..4].try_into().unwrap());
        assert!(
            magic == 0xa1b2_c3d4 || magic == 0xa1b2_3c4d,
            "unexpected pcap magic {magic:#x}"
        );
        let mut frames = Vec::new();
        let mut at = 24;
        while at + 16 <= data.len() {
            let caplen = u32::from_le_bytes(data[at + 8..at + 12].try_into().unwrap()) as usize;
            at += 16;
            assert!(at + caplen <= data.len(), "truncated pcap record");
            frames.push(data[at..at + caplen].to_vec());
            at += caplen;
        }
        frames
    }
}
