use super::*;

const GOOD: &str = r#"
[eal]
lcores = "0-1"
huge_pages = false
memory_mb = 128

[dataplane]
burst = 32

[[port]]
name = "lan"
role = "inside"
device = "net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap"

[[port]]
name = "wan"
role = "outside"
device = "0000:00:05.0"
queues = 2
"#;

#[test]
fn good_config_parses() {
    let c = Config::parse(GOOD, "good.toml").unwrap();
    assert!(!c.eal.huge_pages);
    assert_eq!(c.port.len(), 2);
    assert_eq!(
        c.port[0].device(),
        Device::Virtual {
            name: "net_pcap0",
            spec: "net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap"
        }
    );
    assert_eq!(
        c.port[1].device(),
        Device::Pci {
            address: "0000:00:05.0",
            spec: "0000:00:05.0"
        }
    );
    assert_eq!(c.peer_port(0), Some(1));
    assert_eq!(c.peer_port(1), Some(0));
}

#[test]
fn defaults_fill_sections() {
    let c = Config::parse(
        "[[port]]\nname = \"a\"\nrole = \"both\"\ndevice = \"net_null0\"\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.dataplane, DataplaneConfig::default());
    assert_eq!(c.eal, EalConfig::default());
    assert_eq!(c.peer_port(0), Some(0));
}

#[test]
fn pci_address_forms() {
    for (s, pci) in [
        ("0000:00:04.0", true),
        ("00:04.0", true),
        ("0000:af:1f.7", true),
        ("0000:00:04.8", false),
        ("net_null0", false),
        ("net_ring0,nodeaction=r0:0:CREATE", false),
        ("00:04", false),
        ("zz:04.0", false),
    ] {
        assert_eq!(is_pci_address(s), pci, "{s}");
    }
}

/// Each bad file must be refused with a message naming the field (and the value).
#[test]
fn bad_configs_name_the_field() {
    let port = "[[port]]\nname = \"a\"\nrole = \"both\"\ndevice = \"net_null0\"\n";
    let cases: &[(&str, &str)] = &[
        ("[eal]\nlcorez = \"0-1\"\n", "lcorez"),
        ("[dataplane]\nburst = 0\n", "dataplane.burst"),
        ("[dataplane]\nburst = 1000\n", "dataplane.burst"),
        ("[dataplane]\nburst = \"x\"\n", "burst"),
        ("[dataplane]\nmbufs = 10\n", "dataplane.mbufs"),
        ("[dataplane]\nworkers = 0\n", "dataplane.workers"),
        (
            "[dataplane]\nrx_descriptors = 1000\n",
            "dataplane.rx_descriptors",
        ),
        ("[eal]\nmemory_mb = 1\n", "eal.memory_mb"),
        ("[eal]\nfile_prefix = \"a/b\"\n", "eal.file_prefix"),
        ("[eal]\nlcores = \"\"\n", "eal.lcores"),
        ("", "port"),
        (
            "[[port]]\nname = \"a\"\nrole = \"sideways\"\ndevice = \"x\"\n",
            "sideways",
        ),
        ("[[port]]\nname = \"a\"\nrole = \"both\"\n", "device"),
        (
            "[[port]]\nname = \"\"\nrole = \"both\"\ndevice = \"net_null0\"\n",
            "port[0].name",
        ),
        (
            "[[port]]\nname = \"a\"\nrole = \"both\"\ndevice = \"net_null0\"\nspeed = 1\n",
            "speed",
        ),
        (
            "[[port]]\nname = \"a\"\nrole = \"both\"\ndevice = \"net_null0\"\nmtu = 20\n",
            "port[0].mtu",
        ),
        (
            "[[port]]\nname = \"a\"\nrole = \"both\"\ndevice = \"net_null0\"\nqueues = 0\n",
            "port[0].queues",
        ),
        (
            "[[port]]\nname = \"a\"\nrole = \"inside\"\ndevice = \"net_null0\"\n",
            "port.role",
        ),
    ];
    let dup_name = format!("{port}{}", port.replace("net_null0", "net_null1"));
    let dup_dev = format!("{port}{}", port.replace("\"a\"", "\"b\""));
    let mut all: Vec<(String, &str)> = cases
        .iter()
        .map(|(text, field)| {
            let text = if text.contains("[[port]]") || text.is_empty() {
                text.to_string()
            } else {
                format!("{text}{port}")
            };
            (text, *field)
        })
        .collect();
    all.push((dup_name, "port[1].name"));
    all.push((dup_dev, "port[1].device"));
    for (text, field) in &all {
        let err = Config::parse(text, "bad.toml").expect_err(text);
        let msg = err.to_string();
        assert!(msg.starts_with("bad.toml"), "{msg}");
        assert!(
            msg.contains(field),
            "{text:?}: {msg:?} does not name {field}"
        );
    }
}

#[test]
fn syntax_errors_give_the_line() {
    let err = Config::parse("[eal]\nlcores = \"0-1\"\nhuge_pages = yes\n", "f.toml").unwrap_err();
    assert!(err.to_string().starts_with("f.toml:3:"), "{err}");
}

fn with_lcores(eal: &str) -> Config {
    Config::parse(
        &format!("[eal]\n{eal}\n[[port]]\nname = \"a\"\nrole = \"both\"\ndevice = \"net_null0\"\n"),
        "t",
    )
    .unwrap()
}

#[test]
fn lcores_auto_fits_the_machine() {
    let c = with_lcores("lcores = \"auto\"");
    assert!(c.eal.is_auto());
    assert_eq!(c.eal.lcores_for(&[0, 1, 2, 3]), "0@0,1@1,2@2,3@3");
    assert_eq!(c.eal.lcores_for(&[1]), "0@1,1@1");
    assert!(c.check_cpus(&[0, 1]).is_ok());
    assert!(c.check_cpus(&[5]).is_ok());
    // Explicit lcores are passed as written.
    assert_eq!(with_lcores("lcores = \"0-2\"").eal.lcores_for(&[0]), "0-2");

    let c = with_lcores("lcores = \"auto\"\n[dataplane]\nworkers = 3");
    let e = c.check_cpus(&[0, 1]).unwrap_err();
    assert_eq!(e.field, "dataplane.workers");
    assert!(e.reason.contains("1 worker lcore(s) on CPU 0-1"), "{e}");
    assert!(c.check_cpus(&[0, 1, 2, 3]).is_ok());
}

#[test]
fn lcores_the_machine_lacks_are_named() {
    let e = with_lcores("lcores = \"0-2\"")
        .check_cpus(&[0, 1])
        .unwrap_err();
    assert_eq!(e.field, "eal.lcores");
    assert_eq!(e.value, "0-2");
    assert!(
        e.reason
            .contains("CPU 2 but this process may run only on CPU 0-1"),
        "{e}"
    );
    let e = with_lcores("lcores = \"0@0,1@5,2@6\"")
        .check_cpus(&[0, 1])
        .unwrap_err();
    assert!(e.reason.contains("CPU 5-6"), "{e}");
    assert!(with_lcores("lcores = \"0-1\"").check_cpus(&[0, 1]).is_ok());
    assert!(with_lcores("lcores = \"(0-2)@1\"")
        .check_cpus(&[0, 1])
        .is_ok());
}

/// A gwlb port as the file gives it, with `tunnel` and the sections after it.
fn gwlb(tunnel: &str, rest: &str) -> Result<Config, ConfigError> {
    Config::parse(
        &format!(
            "[[port]]\nname = \"g\"\nrole = \"gwlb\"\ndevice = \"net_null0\"\n\
             address = \"10.0.2.10/24\"\n{tunnel}\n{rest}"
        ),
        "gwlb.toml",
    )
}

#[test]
fn a_gwlb_port_reads_its_tunnel_with_the_clouds_defaults() {
    let c = gwlb("tunnel = { kind = \"geneve\" }", "").unwrap();
    assert_eq!(c.port[0].role, Role::Gwlb);
    assert_eq!(c.port[0].tunnel, Some(TunnelConfig::Geneve { port: 6081 }));
    assert_eq!(c.peer_port(0), Some(0));
    let c = gwlb("tunnel = { kind = \"vxlan\" }", "").unwrap();
    assert_eq!(
        c.port[0].tunnel,
        Some(TunnelConfig::Vxlan {
            internal: VxlanTunnel::internal(),
            external: VxlanTunnel::external(),
        })
    );
    let c = gwlb(
        "tunnel = { kind = \"vxlan\", internal = { port = 2000, vni = 900 } }",
        "",
    )
    .unwrap();
    let Some(TunnelConfig::Vxlan { internal, external }) = c.port[0].tunnel else {
        panic!("{:?}", c.port[0].tunnel)
    };
    assert_eq!((internal.port, internal.vni), (2000, 900));
    assert_eq!(external, VxlanTunnel::external());
    // No SNAT address is asked for: nothing is translated.
    assert!(
        validate::warnings(&c).is_empty(),
        "{:?}",
        validate::warnings(&c)
    );
}

#[test]
fn bad_tunnels_name_the_field() {
    let vxlan = |t: &str| format!("tunnel = {{ kind = \"vxlan\", {t} }}");
    let cases = [
        (String::new(), "", "port[0].tunnel"),
        ("tunnel = { kind = \"gre\" }".into(), "", "gre"),
        ("tunnel = { kind = \"geneve\", vni = 3 }".into(), "", "vni"),
        (
            "tunnel = { kind = \"geneve\", port = 0 }".into(),
            "",
            "port[0].tunnel.port",
        ),
        (
            vxlan("internal = { port = 10801, vni = 800 }"),
            "",
            "port[0].tunnel.external.port",
        ),
        (
            vxlan("external = { port = 10802, vni = 800 }"),
            "",
            "port[0].tunnel.external.vni",
        ),
        (
            vxlan("internal = { port = 10800, vni = 16777216 }"),
            "",
            "port[0].tunnel.internal.vni",
        ),
        (
            "tunnel = { kind = \"geneve\" }".into(),
            "[nat]\naddresses = [\"10.0.2.20\"]\n",
            "nat.addresses",
        ),
        (
            "tunnel = { kind = \"geneve\" }".into(),
            "[[ingress.forward]]\nproto = \"tcp\"\npublic = \"10.0.2.10\"\npublic_port = 80\n\
             private = \"10.0.1.5\"\nprivate_port = 80\n",
            "ingress.forward",
        ),
        (
            "tunnel = { kind = \"geneve\" }".into(),
            "[[port]]\nname = \"wan\"\nrole = \"outside\"\ndevice = \"net_null1\"\n",
            "port[1].role",
        ),
    ];
    for (tunnel, rest, field) in &cases {
        let err = gwlb(tunnel, rest).expect_err(tunnel).to_string();
        assert!(
            err.contains(field),
            "{tunnel:?} {rest:?}: {err:?} does not name {field}"
        );
    }
    // A tunnel on another kind of port; a gwlb port without its address.
    for (port, fields) in [
        ("role = \"both\"", ["port[0].tunnel", "\"gwlb\""]),
        ("role = \"gwlb\"", ["port[0].address", "needs its address"]),
    ] {
        let text = format!(
            "[[port]]\nname = \"a\"\n{port}\ndevice = \"net_null0\"\n\
             tunnel = {{ kind = \"geneve\" }}\n"
        );
        let err = Config::parse(&text, "t").unwrap_err().to_string();
        assert!(fields.iter().all(|f| err.contains(f)), "{err}");
    }
}
