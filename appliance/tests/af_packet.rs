//! AF_PACKET over veth: an inside host and an outside host in their own network namespaces
//! talk through `appliance run` in a third: ping and a TCP transfer, source-NATed to the
//! appliance's public address, with ARP resolved by the appliance on both sides.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn ping_and_tcp_through_the_appliance() {
    let needs = "root (network namespaces and veth pairs)";
    if !require("ping_and_tcp_through_the_appliance", needs, is_root()) {
        return;
    }
    let id = std::process::id() % 100_000;
    let (a, b, f) = (
        format!("nvt{id}a"),
        format!("nvt{id}b"),
        format!("nvt{id}f"),
    );
    let mut ns = Namespaces::default();
    for n in [&a, &b, &f] {
        ns.add(n);
    }
    // host a -- (a0 | fa) appliance (fb | b0) -- host b
    sh(&format!(
        "ip link add a0 netns {a} type veth peer name fa netns {f}"
    ));
    sh(&format!(
        "ip link add b0 netns {b} type veth peer name fb netns {f}"
    ));
    for (n, i) in [(&a, "a0"), (&f, "fa"), (&f, "fb"), (&b, "b0")] {
        // Offloads off on both ends: AF_PACKET does not carry CHECKSUM_PARTIAL.
        sh(&format!(
            "ip netns exec {n} ethtool -K {i} tx off rx off tso off gso off gro off >/dev/null 2>&1 || true"
        ));
        sh(&format!("ip -n {n} link set {i} up"));
    }
    sh(&format!("ip -n {a} addr add 10.77.1.10/24 dev a0"));
    sh(&format!("ip -n {a} route add default via 10.77.1.1"));
    sh(&format!("ip -n {b} addr add 192.0.2.1/24 dev b0"));

    let dir = scratch("afp");
    let huge = hugepages_available();
    let config = write(
        &dir,
        "afp.toml",
        &format!(
            r#"
[eal]
lcores = "0-1"
huge_pages = {huge}
memory_mb = 256
file_prefix = "t-afp-{id}"

[dataplane]
mbufs = 8191

[control]
socket = ""

[[port]]
name = "lan"
role = "inside"
device = "net_af_packet0,iface=fa"
address = "10.77.1.1/24"

[[port]]
name = "wan"
role = "outside"
device = "net_af_packet1,iface=fb"
address = "192.0.2.2/24"
gateway = "192.0.2.1"
"#
        ),
    );
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &f,
            env!("CARGO_BIN_EXE_appliance"),
            "run",
            "--json",
            "--config",
        ])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn appliance");
    let app = ns.own(child);

    let ping_ok = |count: u32| {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &a,
                "ping",
                "-c",
                &count.to_string(),
                "-i",
                "0.2",
                "-W",
                "1",
                "192.0.2.1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    assert!(
        wait_for(Duration::from_secs(20), || ping_ok(1)),
        "no ping reply through the appliance within 20 s"
    );
    let out = sh(&format!(
        "ip netns exec {a} ping -c 5 -i 0.2 -W 1 192.0.2.1"
    ));
    assert!(out.contains(" 0% packet loss"), "{out}");

    // 4 MB of random bytes over TCP, from a to b.
    let send = dir.join("send.bin");
    let recv = dir.join("recv.bin");
    sh(&format!(
        "head -c 4000000 /dev/urandom > {}",
        send.display()
    ));
    let server = Command::new("ip")
        .args(["netns", "exec", &b, "sh", "-c"])
        .arg(format!(
            "exec nc -n -v -l 192.0.2.1 5001 > {} 2> {}",
            recv.display(),
            dir.join("server.log").display()
        ))
        .spawn()
        .expect("spawn nc server");
    let server = ns.own(server);
    std::thread::sleep(Duration::from_millis(300));
    sh(&format!(
        "ip netns exec {a} timeout 30 nc -N 192.0.2.1 5001 < {}",
        send.display()
    ));
    let status = ns.child(server).wait().expect("wait nc");
    assert!(status.success(), "nc server failed");
    let (s, r) = (std::fs::read(&send).unwrap(), std::fs::read(&recv).unwrap());
    assert_eq!(r.len(), s.len(), "received length");
    assert!(r == s, "received bytes differ");
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    assert!(
        log.contains("192.0.2.2"),
        "the server sees the appliance's public address as the client: {log}"
    );

    let child = ns.child(app);
    let status = terminate(child);
    let mut stdout = String::new();
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "appliance exit {status:?}: {stderr}");
    let r: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    assert!(count(port(&r, "lan"), "rx_packets") > 2500, "{r}");
    assert!(count(port(&r, "wan"), "tx_packets") > 2500, "{r}");
    assert!(count(port(&r, "wan"), "rx_packets") > 0, "{r}");
}
