//! Bad configuration, arguments and environment: `appliance` exits 2 with one error line
//! naming the field or the cause, and never panics.

mod common;
use common::*;

const PORTS: &str = r#"
[[port]]
name = "a"
role = "inside"
device = "net_null0"

[[port]]
name = "b"
role = "outside"
device = "net_null1"
"#;

/// No control socket, and an `[eal]` section of `lines` with a file prefix of its own.
fn eal_with(prefix: &str, lines: &str) -> String {
    format!(
        "[control]\nsocket = \"\"\n[eal]\n{lines}\nfile_prefix = \"{prefix}-{}\"\n",
        std::process::id()
    )
}

/// [`eal_with`] two lcores, no huge pages, 128 MB.
fn eal(prefix: &str) -> String {
    eal_with(
        prefix,
        "lcores = \"0-1\"\nhuge_pages = false\nmemory_mb = 128",
    )
}

/// Runs `appliance` with `args` and checks exit 2 and an error line containing `needle`.
fn expect_error(args: &[&str], needle: &str) {
    let out = appliance().args(args).output().expect("spawn");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("error"))
        .unwrap_or_else(|| panic!("{args:?}: no error line in {stderr}"));
    assert!(
        line.contains(needle),
        "{args:?}: {line:?} does not name {needle:?}"
    );
}

fn expect_run_error(name: &str, text: &str, needle: &str) {
    let dir = scratch(&format!("err-{name}"));
    let cfg = write(&dir, "c.toml", text);
    let cfg = cfg.to_str().unwrap();
    expect_error(&["run", "--config", cfg], needle);
    if !needle.starts_with("port[") && !needle.contains("huge") {
        // Everything caught before EAL is caught by `check` too.
        expect_error(&["check", "--config", cfg], needle);
    }
}

#[test]
fn unknown_field() {
    expect_run_error(
        "unknown",
        &format!("{}colour = 1\n{PORTS}", eal("u")),
        "colour",
    );
}

#[test]
fn missing_ports() {
    expect_run_error("noport", &eal("m"), "port");
}

#[test]
fn missing_peer_port() {
    let text = format!(
        "{}[[port]]\nname = \"a\"\nrole = \"inside\"\ndevice = \"net_null0\"\n",
        eal("p")
    );
    expect_run_error("nopeer", &text, "port.role");
}

#[test]
fn missing_file() {
    expect_error(
        &["run", "--config", "/nonexistent/appliance.toml"],
        "/nonexistent/appliance.toml",
    );
}

#[test]
fn bad_arguments() {
    // clap explains on several lines; the whole message must name the argument.
    for (args, needle) in [
        (&["run"][..], "--config"),
        (&["run", "--config", "x", "--duration", "-1"][..], "-1"),
        (&["run", "--config", "x", "--duration", "soon"][..], "soon"),
        (&["frobnicate"][..], "frobnicate"),
    ] {
        let out = appliance().args(args).output().expect("spawn");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error:"), "{stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn bad_device_names_the_port() {
    let text = format!(
        "{}[[port]]\nname = \"a\"\nrole = \"inside\"\ndevice = \"net_null0\"\n\
         [[port]]\nname = \"b\"\nrole = \"outside\"\ndevice = \"net_nosuchpmd0\"\n",
        eal("d")
    );
    expect_run_error("baddev", &text, "port[1] (b) device \"net_nosuchpmd0\"");
}

#[test]
fn dpdk_refusing_a_port_names_it() {
    // net_pcap refuses an rx file that does not exist.
    let text = format!(
        "{}[[port]]\nname = \"a\"\nrole = \"inside\"\ndevice = \"net_pcap0,rx_pcap=/nonexistent.pcap,tx_pcap=/dev/null\"\n\
         [[port]]\nname = \"b\"\nrole = \"outside\"\ndevice = \"net_null1\"\n",
        eal("r")
    );
    expect_run_error("refused", &text, "port[0] (a)");
}

#[test]
fn more_workers_than_lcores() {
    let text = format!("{}[dataplane]\nworkers = 3\n{PORTS}", eal("w"));
    expect_run_error("workers", &text, "dataplane.workers");
}

#[test]
fn bad_lcores_names_eal_lcores() {
    let lines = "lcores = \"0-1,banana\"\nhuge_pages = false\nmemory_mb = 128";
    let text = format!("{}{PORTS}", eal_with("l", lines));
    expect_run_error("lcores", &text, "eal.lcores");
}

#[test]
fn lcores_the_machine_lacks_are_named() {
    let lines = "lcores = \"0,1000\"\nhuge_pages = false\nmemory_mb = 128";
    let text = format!("{}{PORTS}", eal_with("c", lines));
    expect_run_error("cpus", &text, "eal.lcores = \"0,1000\": names CPU 1000");
}

/// EAL answers an argument it refuses with about 100 lines of usage on stdout: none of them
/// reach the user, while EAL's reason and the one error line do.
#[test]
fn eal_usage_text_is_kept_out() {
    let dir = scratch("err-usage");
    let text = format!(
        "{}extra_args = [\"--no-such-eal-option\"]\n{PORTS}",
        eal("x")
    );
    let cfg = write(&dir, "c.toml", &text);
    let out = appliance()
        .args(["run", "--config", cfg.to_str().unwrap()])
        .output()
        .expect("spawn");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(!all.contains("Usage:"), "{all}");
    assert!(!all.contains("EAL common options"), "{all}");
    assert!(
        all.contains("no-such-eal-option"),
        "EAL's reason stays: {all}"
    );
    assert!(
        all.lines()
            .any(|l| l.starts_with("error: EAL initialisation failed")),
        "{all}"
    );
}

/// Without hugetlbfs (a private mount namespace where it is unmounted), asking for huge
/// pages is refused with the fix in the message.
#[test]
fn no_hugepages() {
    if !require(
        "no_hugepages",
        "root (to unshare a mount namespace)",
        is_root(),
    ) {
        return;
    }
    let dir = scratch("err-huge");
    let text = format!(
        "{}{PORTS}",
        eal_with("h", "lcores = \"0-1\"\nhuge_pages = true")
    );
    let cfg = write(&dir, "c.toml", &text);
    let mounts: Vec<String> = hugetlbfs_mounts()
        .iter()
        .map(|m| format!("umount -l {}", m.display()))
        .collect();
    let script = format!(
        "{} ; exec {} run --config {}",
        if mounts.is_empty() {
            "true".to_string()
        } else {
            mounts.join(" ; ")
        },
        env!("CARGO_BIN_EXE_appliance"),
        cfg.display()
    );
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("spawn unshare");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("error"))
        .expect("error line");
    assert!(line.contains("eal.huge_pages"), "{line}");
}
