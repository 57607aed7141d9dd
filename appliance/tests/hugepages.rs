//! With huge pages, a run leaves nothing behind: no files in hugetlbfs, no runtime folder.

mod common;
use common::*;

#[test]
fn no_files_left_behind() {
    let needs = "free huge pages and a mounted hugetlbfs";
    if !require("no_files_left_behind", needs, hugepages_available()) {
        return;
    }
    let prefix = format!("t-huge-{}", std::process::id());
    let dir = scratch("huge");
    let config = write(
        &dir,
        "huge.toml",
        &format!(
            r#"
[eal]
lcores = "0-1"
huge_pages = true
memory_mb = 128
file_prefix = "{prefix}"
{NULL_PORTS}"#
        ),
    );
    let r = report(&run_appliance(&config, &["--duration", "1"]));
    assert!(count(port(&r, "in"), "rx_packets") > 0);
    for m in hugetlbfs_mounts() {
        let left: Vec<_> = std::fs::read_dir(&m)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&prefix))
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "{} holds {left:?}", m.display());
    }
    for run in ["/var/run/dpdk", "/run/dpdk"] {
        let p = std::path::Path::new(run).join(&prefix);
        assert!(!p.exists(), "{} was left behind", p.display());
    }
}
