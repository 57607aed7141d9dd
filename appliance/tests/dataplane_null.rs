//! net_null through `appliance run`: millions of packets through the real worker loop and
//! pipeline, and the counters add up, with one worker and two.

mod common;
use common::*;

fn config(dir: &std::path::Path, name: &str, lcores: &str, workers: u16) -> std::path::PathBuf {
    write(
        dir,
        &format!("{name}.toml"),
        &format!(
            r#"
[eal]
lcores = "{lcores}"
huge_pages = false
memory_mb = 256
file_prefix = "t-{name}-{pid}"

[dataplane]
workers = {workers}
mbufs = 8191
{NULL_PORTS}"#,
            pid = std::process::id()
        ),
    )
}

/// Every packet received is accounted for: sent, dropped at tx, or dropped by the pipeline
/// with a reason (net_null frames are all-zero, so the pipeline drops them: `not_for_us`).
fn check_balance(r: &serde_json::Value) {
    let (i, o) = (port(r, "in"), port(r, "out"));
    let rx = count(i, "rx_packets") + count(o, "rx_packets");
    assert!(rx >= 1_000_000, "at least a million packets: {r}");
    let tx = count(i, "tx_packets") + count(o, "tx_packets");
    let tx_dropped = count(i, "tx_dropped") + count(o, "tx_dropped");
    let drops: u64 = r["drops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d[1].as_u64().unwrap())
        .sum();
    assert_eq!(
        rx,
        tx + tx_dropped + drops,
        "rx = tx + tx_dropped + drops: {r}"
    );
    let processed: u64 = r["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["processed"].as_u64().unwrap())
        .sum();
    assert!(processed >= rx, "every packet went through a worker: {r}");
}

#[test]
fn one_worker_counters_add_up() {
    let dir = scratch("null1");
    let r = report(&run_appliance(
        &config(&dir, "null1", "0-1", 1),
        &["--duration", "4", "--stats-interval", "0.5"],
    ));
    assert_eq!(r["workers"].as_array().unwrap().len(), 1);
    check_balance(&r);
}

#[test]
fn two_workers_counters_add_up() {
    let dir = scratch("null2");
    // Three lcores on two CPUs: the main lcore and two workers (sharing CPU 1).
    let r = report(&run_appliance(
        &config(&dir, "null2", "0@0,1@1,2@1", 2),
        &["--duration", "4"],
    ));
    let workers = r["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    for w in workers {
        assert!(
            w["processed"].as_u64().unwrap() > 0,
            "every worker polls: {r}"
        );
    }
    check_balance(&r);
}

/// `lcores = "auto"`: control on the first CPU, a worker on each other one (on a 1-CPU
/// machine one worker shares it), each port with a queue per worker.
#[test]
fn auto_lcores_give_a_worker_per_other_cpu() {
    let dir = scratch("null-auto");
    let path = config(&dir, "nullauto", "auto", 1);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("workers = 1\n", "")).unwrap();
    let r = report(&run_appliance(&path, &["--duration", "2"]));
    let cpus = std::thread::available_parallelism().unwrap().get();
    let workers = r["workers"].as_array().unwrap();
    assert_eq!(workers.len(), cpus.saturating_sub(1).max(1), "{r}");
}
