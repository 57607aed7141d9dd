//! `appliance bench` through the real binary, briefly: every flow gets its session through
//! the ring ports and established traffic flows out translated; a million endpoint-dependent
//! sessions fit on one public address.

mod common;
use common::*;

#[test]
fn bench_creates_every_session_and_forwards() {
    let out = appliance()
        .args([
            "bench",
            "--flows",
            "2000",
            "--duration",
            "1",
            "--no-huge",
            "--json",
        ])
        .output()
        .expect("spawn");
    let r = report(&out);
    let b = &r["bench"];
    assert_eq!(b["flows"].as_u64(), Some(2000), "{r}");
    assert_eq!(r["sessions_created"].as_u64(), Some(2000), "{r}");
    assert!(b["established_pps"].as_f64().unwrap_or(0.0) > 0.0, "{r}");
    assert!(count(port(&r, "wan"), "tx_packets") >= 2000, "{r}");
    assert!(b["cycles_per_packet"].as_f64().unwrap_or(0.0) > 0.0, "{r}");
}

/// A million flows (1 000 inside endpoints, 1 000 servers each) through the ring ports with
/// endpoint-dependent mapping on the outside port's one address: every flow has its session,
/// none is refused a port (one port per session held at most 64 512 before ports were
/// shared between remote endpoints), and the report says what the table cost in memory.
#[test]
fn a_million_endpoint_dependent_sessions_on_one_address() {
    let out = appliance()
        .args([
            "bench",
            "--flows",
            "1000000",
            "--mapping",
            "endpoint-dependent",
            "--duration",
            "0.5",
            "--no-huge",
            "--json",
        ])
        .output()
        .expect("spawn");
    let r = report(&out);
    assert_eq!(r["sessions_created"].as_u64(), Some(1_000_000), "{r}");
    let drops = r["drops"].as_array().expect("drops");
    assert!(
        !drops.iter().any(|d| d[0] == "nat_port_exhausted"),
        "no flow refused a port: {drops:?}"
    );
    let b = &r["bench"];
    assert_eq!(b["max_sessions"].as_u64(), Some(1_100_000), "{r}");
    let per_session = b["rss_bytes_per_session"].as_f64().unwrap_or(0.0);
    assert!(
        per_session > 64.0,
        "a session costs at least its record: {r}"
    );
}

#[test]
fn bench_rejects_bad_arguments() {
    for args in [
        &["bench", "--flows", "0"][..],
        &["bench", "--workers", "0"][..],
        &["bench", "--remotes", "0"][..],
        &["bench", "--addresses", "201"][..],
        &["bench", "--mapping", "cone"][..],
        &["bench", "--flows", "100", "--max-sessions", "99"][..],
    ] {
        let out = appliance().args(args).output().expect("spawn");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("error"));
    }
}
