//! `appliance bench` through the real binary, briefly: every flow gets its session through
//! the ring ports and established traffic flows out translated.

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

#[test]
fn bench_rejects_bad_arguments() {
    for args in [
        &["bench", "--flows", "0"][..],
        &["bench", "--workers", "0"][..],
    ] {
        let out = appliance().args(args).output().expect("spawn");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("error"));
    }
}
