//! net_pcap through `appliance run`: crafted frames in, the same frames out, same order.

mod common;
use common::*;

/// Frames of every size from the Ethernet minimum to a full 1514-byte frame, each with a
/// distinct pattern so a reorder or a corruption is visible.
fn frames() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for i in 0..200usize {
        let len = 60 + (i * 37) % (1514 - 60 + 1);
        let mut f = Vec::with_capacity(len);
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]); // destination MAC
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]); // source MAC
        f.extend_from_slice(&0x88b5u16.to_be_bytes()); // local experimental EtherType
        f.extend_from_slice(&(i as u32).to_be_bytes()); // sequence number
        while f.len() < len {
            f.push((f.len() * 7 + i) as u8);
        }
        out.push(f);
    }
    out
}

#[test]
fn frames_pass_unchanged_and_in_order() {
    let dir = scratch("pcap");
    let sent = frames();
    pcap::write(&dir.join("in.pcap"), &sent);
    pcap::write(&dir.join("empty.pcap"), &[]);
    let config = write(
        &dir,
        "pcap.toml",
        &format!(
            r#"
[eal]
lcores = "0-1"
huge_pages = false
memory_mb = 128
file_prefix = "t-pcap-{pid}"

[dataplane]
mbufs = 4095

[[port]]
name = "lan"
role = "inside"
device = "net_pcap0,rx_pcap={d}/in.pcap,tx_pcap={d}/back.pcap"

[[port]]
name = "wan"
role = "outside"
device = "net_pcap1,rx_pcap={d}/empty.pcap,tx_pcap={d}/out.pcap"
"#,
            d = dir.display(),
            pid = std::process::id()
        ),
    );
    let out = run_appliance(&config, &["--duration", "1.5"]);
    let r = report(&out);
    assert_eq!(count(port(&r, "lan"), "rx_packets"), sent.len() as u64);
    assert_eq!(count(port(&r, "wan"), "tx_packets"), sent.len() as u64);
    assert_eq!(count(port(&r, "wan"), "tx_dropped"), 0);

    let got = pcap::read(&dir.join("out.pcap"));
    assert_eq!(got.len(), sent.len(), "every frame came out");
    for (i, (a, b)) in sent.iter().zip(&got).enumerate() {
        assert_eq!(a, b, "frame {i} differs");
    }
    assert!(
        pcap::read(&dir.join("back.pcap")).is_empty(),
        "nothing went back"
    );
}
