//! What a reload may change, and why one is refused.
//!
//! A reload re-reads the whole file, but only the policy can change while the appliance
//! runs. Everything the data path sized or bound at start needs a restart:
//!
//! | field | why |
//! |---|---|
//! | `eal.*` | EAL is initialised once per process |
//! | `dataplane.*` | workers, pools, rings and descriptor rings are set up at start |
//! | the number of `[[port]]`s; `port[i].name`, `role`, `device`, `queues`, `mtu`, `promiscuous` | ports are probed, configured and handed to workers at start; names label the counters |
//! | `nat.max_sessions` | the session tables are preallocated at start |
//! | `nat.port_range` | each worker owns a fixed slice of it, and a packet's owner is computed from its port |
//! | the SNAT pool (`nat.addresses`, or the outside ports' addresses when it is empty) | each worker's port pools are built for it at start (checked on the compiled policy) |
//! | `control.socket`, `control.metrics` | bound at start |
//!
//! Everything else reloads: the other port addresses, gateways and neighbours,
//! `private_prefixes`, the rest of `[nat]` (mapping, filtering, timeouts, hairpinning, ...),
//! `[egress]`, `[ingress]`, `[local]` and `control.watch_config`.
//! A file that changes a restart-only field is refused whole, naming each such field; the
//! running policy stays.

use crate::config::{Config, ConfigError};
use crate::policy::PolicyError;
use std::fmt::{self, Debug};

/// A restart-only field that differs between the running configuration and the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartChange {
    /// The field's path (`port[0].device`).
    pub field: String,
    /// Its running value.
    pub running: String,
    /// Its value in the file.
    pub file: String,
}

impl fmt::Display for RestartChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} cannot change without a restart (running: {}, file: {})",
            self.field, self.running, self.file
        )
    }
}

/// Every restart-only field that differs between `running` and `file`, in file order.
pub fn restart_only_changes(running: &Config, file: &Config) -> Vec<RestartChange> {
    let mut out = Vec::new();
    let mut diff = |field: String, a: &dyn Debug, b: &dyn Debug| {
        let (a, b) = (format!("{a:?}"), format!("{b:?}"));
        if a != b {
            out.push(RestartChange {
                field,
                running: a,
                file: b,
            });
        }
    };
    let (e, f) = (&running.eal, &file.eal);
    diff("eal.lcores".into(), &e.lcores, &f.lcores);
    diff("eal.huge_pages".into(), &e.huge_pages, &f.huge_pages);
    diff("eal.memory_mb".into(), &e.memory_mb, &f.memory_mb);
    diff("eal.file_prefix".into(), &e.file_prefix, &f.file_prefix);
    diff("eal.telemetry".into(), &e.telemetry, &f.telemetry);
    diff("eal.log_level".into(), &e.log_level, &f.log_level);
    diff("eal.extra_args".into(), &e.extra_args, &f.extra_args);
    let (d, g) = (&running.dataplane, &file.dataplane);
    diff(
        "dataplane.workers".into(),
        &format_args!("{}", opt(d.workers)),
        &format_args!("{}", opt(g.workers)),
    );
    diff("dataplane.burst".into(), &d.burst, &g.burst);
    diff("dataplane.mbufs".into(), &d.mbufs, &g.mbufs);
    diff("dataplane.mbuf_cache".into(), &d.mbuf_cache, &g.mbuf_cache);
    diff(
        "dataplane.rx_descriptors".into(),
        &d.rx_descriptors,
        &g.rx_descriptors,
    );
    diff(
        "dataplane.tx_descriptors".into(),
        &d.tx_descriptors,
        &g.tx_descriptors,
    );
    if running.port.len() != file.port.len() {
        diff(
            "port".into(),
            &format_args!("{} ports", running.port.len()),
            &format_args!("{} ports", file.port.len()),
        );
    }
    for (i, (p, q)) in running.port.iter().zip(&file.port).enumerate() {
        diff(format!("port[{i}].name"), &p.name, &q.name);
        diff(format!("port[{i}].role"), &p.role.name(), &q.role.name());
        diff(format!("port[{i}].device"), &p.device, &q.device);
        diff(
            format!("port[{i}].queues"),
            &format_args!("{}", opt(p.queues)),
            &format_args!("{}", opt(q.queues)),
        );
        diff(
            format!("port[{i}].mtu"),
            &format_args!("{}", opt(p.mtu)),
            &format_args!("{}", opt(q.mtu)),
        );
        diff(
            format!("port[{i}].promiscuous"),
            &p.promiscuous,
            &q.promiscuous,
        );
    }
    diff(
        "nat.max_sessions".into(),
        &running.nat.max_sessions,
        &file.nat.max_sessions,
    );
    diff(
        "nat.port_range".into(),
        &format_args!("{}", opt(running.nat.port_range.ok())),
        &format_args!("{}", opt(file.nat.port_range.ok())),
    );
    diff(
        "control.socket".into(),
        &running.control.socket,
        &file.control.socket,
    );
    diff(
        "control.metrics".into(),
        &format_args!("{}", opt(running.control.metrics_address())),
        &format_args!("{}", opt(file.control.metrics_address())),
    );
    out
}

/// An optional value as shown in a refusal: the value, or `unset`.
fn opt<T: fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "unset".to_string(), |v| v.to_string())
}

/// Why a reload was refused. In every case the running policy stays in force.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file could not be read, parsed or validated.
    #[error("reload refused, policy generation {generation} stays in force: {source}")]
    Config {
        /// The generation still in force.
        generation: u64,
        /// What is wrong with the file.
        source: ConfigError,
    },
    /// The policy could not be compiled.
    #[error("reload refused, policy generation {generation} stays in force: {source}")]
    Policy {
        /// The generation still in force.
        generation: u64,
        /// What the compiler said.
        source: PolicyError,
    },
    /// The file changes fields that need a restart.
    #[error(
        "reload refused, policy generation {generation} stays in force: {}",
        changes.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    NeedsRestart {
        /// The generation still in force.
        generation: u64,
        /// Each restart-only field that differs.
        changes: Vec<RestartChange>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::PORTS as BASE;

    fn edit(from: &str, to: &str) -> Config {
        assert!(BASE.contains(from), "{from}");
        Config::parse(&BASE.replacen(from, to, 1), "new.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`BASE`] with `section` added at the end.
    fn append(section: &str) -> Config {
        Config::parse(&format!("{BASE}\n{section}"), "new.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    /// `new` changes one restart-only field of `base`, `field`, and says so.
    fn named(base: &Config, new: &Config, field: &str) {
        let changes = restart_only_changes(base, new);
        assert_eq!(changes.len(), 1, "{field}: {changes:?}");
        assert_eq!(changes[0].field, field);
        let msg = changes[0].to_string();
        assert!(
            msg.starts_with(&format!("{field} cannot change without a restart")),
            "{msg}"
        );
    }

    /// Each edit of a restart-only field is named, with both values.
    #[test]
    fn restart_only_fields_are_named() {
        let base = Config::parse(BASE, "base.toml").unwrap();
        let cases: &[(&str, &str, &str)] = &[
            ("lcores = \"0-1\"", "lcores = \"0-2\"", "eal.lcores"),
            ("huge_pages = false", "huge_pages = true", "eal.huge_pages"),
            (
                "huge_pages = false",
                "huge_pages = false\nmemory_mb = 512",
                "eal.memory_mb",
            ),
            (
                "huge_pages = false",
                "huge_pages = false\nextra_args = [\"--no-pci\"]",
                "eal.extra_args",
            ),
            (
                "[[port]]\nname = \"lan\"",
                "[dataplane]\nburst = 64\n\n[[port]]\nname = \"lan\"",
                "dataplane.burst",
            ),
            (
                "[[port]]\nname = \"lan\"",
                "[dataplane]\nworkers = 1\n\n[[port]]\nname = \"lan\"",
                "dataplane.workers",
            ),
            (
                "device = \"net_null0\"",
                "device = \"net_null2\"",
                "port[0].device",
            ),
            ("name = \"wan\"", "name = \"internet\"", "port[1].name"),
            (
                "device = \"net_null1\"",
                "device = \"net_null1\"\nqueues = 2",
                "port[1].queues",
            ),
            (
                "device = \"net_null1\"",
                "device = \"net_null1\"\nmtu = 9000",
                "port[1].mtu",
            ),
            (
                "device = \"net_null0\"",
                "device = \"net_null0\"\npromiscuous = true",
                "port[0].promiscuous",
            ),
        ];
        for (from, to, field) in cases {
            named(&base, &edit(from, to), field);
        }
        // Sections added after the ports.
        for (section, field) in [
            (
                "[[port]]\nname = \"mgmt\"\nrole = \"outside\"\ndevice = \"net_null2\"\n",
                "port",
            ),
            ("[nat]\nmax_sessions = 1000\n", "nat.max_sessions"),
            ("[nat]\nport_range = \"2000-3000\"\n", "nat.port_range"),
            (
                "[control]\nsocket = \"/tmp/other.sock\"\n",
                "control.socket",
            ),
            (
                "[control]\nmetrics = \"127.0.0.1:9469\"\n",
                "control.metrics",
            ),
        ] {
            named(&base, &append(section), field);
        }
        let queues = restart_only_changes(
            &base,
            &edit(
                "device = \"net_null1\"",
                "device = \"net_null1\"\nqueues = 2",
            ),
        );
        assert_eq!(
            queues[0].to_string(),
            "port[1].queues cannot change without a restart (running: unset, file: 2)"
        );
        let two = restart_only_changes(
            &base,
            &edit("lcores = \"0-1\"", "lcores = \"0-2\"\nmemory_mb = 512"),
        );
        assert_eq!(two.len(), 2);
    }

    /// Policy fields reload.
    #[test]
    fn policy_fields_reload() {
        let base = Config::parse(BASE, "base.toml").unwrap();
        for (from, to) in [
            ("address = \"10.0.1.1/24\"", "address = \"10.0.2.1/24\""),
            (
                "gateway = \"192.0.2.1\"\n",
                "gateway = \"192.0.2.254\"\n\n[egress]\ndefault = \"deny\"\n\n[nat]\nhairpinning = false\naddresses = [\"192.0.2.9\"]\n\n[nat.timeouts]\nudp = 600\n\n[control]\nwatch_config = true\n",
            ),
        ] {
            assert_eq!(restart_only_changes(&base, &edit(from, to)), vec![]);
        }
        // The same values written differently are no change.
        let with = |nat: &str| {
            Config::parse(
                &format!("{BASE}\n[nat]\n{nat}\n[control]\nmetrics = \"127.0.0.1:9469\"\n"),
                "t",
            )
            .unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(
            restart_only_changes(
                &with("port_range = \"1024-65535\""),
                &with("port_range = \" 1024 - 65535 \"")
            ),
            vec![]
        );
    }

    #[test]
    fn refusal_names_the_generation_and_every_field() {
        let e = ReloadError::NeedsRestart {
            generation: 4,
            changes: vec![
                RestartChange {
                    field: "port[0].device".into(),
                    running: "\"a\"".into(),
                    file: "\"b\"".into(),
                },
                RestartChange {
                    field: "eal.lcores".into(),
                    running: "\"0-1\"".into(),
                    file: "\"0-2\"".into(),
                },
            ],
        };
        assert_eq!(
            e.to_string(),
            "reload refused, policy generation 4 stays in force: port[0].device cannot change \
             without a restart (running: \"a\", file: \"b\"); eal.lcores cannot change without \
             a restart (running: \"0-1\", file: \"0-2\")"
        );
    }
}
