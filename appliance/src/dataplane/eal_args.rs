//! The EAL command line the configuration asks for.

use crate::config::{Config, Device};

/// EAL arguments for `config` in a process that may run on `cpus`: lcores (`"auto"` fitted
/// to `cpus`), memory, huge pages, runtime-file hygiene, and the PCI allow-list. Virtual
/// devices are not listed here: they are probed one by one after init, so a bad one is
/// reported against its own `[[port]]`.
pub fn eal_args(config: &Config, cpus: &[u32]) -> Vec<String> {
    let eal = &config.eal;
    let mut args: Vec<String> = vec![
        "--lcores".into(),
        eal.lcores_for(cpus),
        "-m".into(),
        eal.memory_mb.to_string(),
        "--file-prefix".into(),
        eal.file_prefix.clone(),
        format!("--log-level={}", eal.log_level),
    ];
    if eal.huge_pages {
        // In-memory mode keeps no files in hugetlbfs or /var/run/dpdk, even after a crash.
        args.push("--in-memory".into());
    } else {
        // --no-huge implies legacy memory, which --in-memory refuses; --no-shconf keeps the
        // shared-config file out of /var/run/dpdk instead.
        args.push("--no-huge".into());
        args.push("--no-shconf".into());
    }
    if !eal.telemetry {
        args.push("--no-telemetry".into());
    }
    let mut pci = false;
    for p in &config.port {
        if let Device::Pci { spec, .. } = p.device() {
            args.push("-a".into());
            args.push(spec.to_string());
            pci = true;
        }
    }
    if !pci {
        args.push("--no-pci".into());
    }
    args.extend(eal.extra_args.iter().cloned());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vdev_only_config() {
        let c = Config::parse(
            "[eal]\nlcores = \"0@0,1@1\"\nhuge_pages = false\nmemory_mb = 128\n\
             [[port]]\nname = \"a\"\nrole = \"both\"\ndevice = \"net_null0\"\n",
            "t",
        )
        .unwrap();
        let a = eal_args(&c, &[0, 1]);
        assert_eq!(a[..4], ["--lcores", "0@0,1@1", "-m", "128"]);
        assert!(a.contains(&"--no-huge".to_string()));
        assert!(a.contains(&"--no-shconf".to_string()));
        assert!(a.contains(&"--no-pci".to_string()));
        assert!(a.contains(&"--no-telemetry".to_string()));
        assert!(!a.iter().any(|x| x.contains("net_null0")));
    }

    #[test]
    fn pci_ports_are_allow_listed() {
        let c = Config::parse(
            "[eal]\nextra_args = [\"--iova-mode=va\"]\n\
             [[port]]\nname = \"a\"\nrole = \"inside\"\ndevice = \"0000:00:04.0,rx_low_latency=1\"\n\
             [[port]]\nname = \"b\"\nrole = \"outside\"\ndevice = \"net_null0\"\n",
            "t",
        )
        .unwrap();
        let a = eal_args(&c, &[0, 1]);
        let i = a.iter().position(|x| x == "-a").unwrap();
        assert_eq!(a[i + 1], "0000:00:04.0,rx_low_latency=1");
        assert!(a.contains(&"--in-memory".to_string()));
        assert!(!a.contains(&"--no-pci".to_string()));
        assert_eq!(a.last().unwrap(), "--iova-mode=va");
    }

    #[test]
    fn auto_lcores_follow_the_cpus() {
        let c = Config::parse(
            "[eal]\nlcores = \"auto\"\n[[port]]\nname = \"a\"\nrole = \"both\"\ndevice = \"net_null0\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(eal_args(&c, &[0, 1, 2])[..2], ["--lcores", "0@0,1@1,2@2"]);
        assert_eq!(eal_args(&c, &[3])[..2], ["--lcores", "0@3,1@3"]);
    }
}
