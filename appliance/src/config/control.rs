//! `[control]`: where the running appliance can be reached (control socket, Prometheus
//! endpoint) and whether it watches its configuration file.

use super::error::FieldError;
use crate::config::value::{FromConfigText, Parsed};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where `appliance run` listens for `appliance stats|sessions|reload|policy` by default.
pub const DEFAULT_SOCKET: &str = "/run/appliance/control.sock";

/// `[control]`.
///
/// `socket` and `metrics` are bound once at start: a reload that changes them is refused
/// (see [`crate::control::restart_only_changes`]). `watch_config` may change on reload.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// Path of the control socket (a unix stream socket, mode 0600). Absolute; the empty
    /// string turns the control socket off.
    pub socket: PathBuf,
    /// Address of the Prometheus endpoint (`"127.0.0.1:9469"`), served over HTTP at any path
    /// (conventionally `/metrics`). Absent: no endpoint.
    pub metrics: Option<Parsed<SocketAddr>>,
    /// Reload when the configuration file's modification time changes (checked every
    /// second), as if `appliance reload` had been run.
    pub watch_config: bool,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            socket: PathBuf::from(DEFAULT_SOCKET),
            metrics: None,
            watch_config: false,
        }
    }
}

impl ControlConfig {
    /// The control socket's path, `None` when it is turned off (`socket = ""`).
    pub fn socket_path(&self) -> Option<&Path> {
        Some(self.socket.as_path()).filter(|p| !p.as_os_str().is_empty())
    }

    /// The Prometheus endpoint's address, when configured and valid.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|m| m.ok().copied())
    }
}

/// `ip:port` or `[ipv6]:port`; host names are refused (nothing resolves them at start).
impl FromConfigText for SocketAddr {
    fn from_config_text(text: &str) -> Result<Self, String> {
        text.parse().map_err(|_| {
            "must be an address and port to listen on, like \"127.0.0.1:9469\" or \"[::1]:9469\""
                .to_string()
        })
    }
}

/// Checks `[control]`, appending every problem to `errors`.
pub(super) fn check(c: &ControlConfig, errors: &mut Vec<FieldError>) {
    if let Some(path) = c.socket_path() {
        let text = path.display().to_string();
        if !path.is_absolute() {
            errors.push(FieldError::new(
                "control.socket",
                &text,
                "must be an absolute path (or \"\" for no control socket)",
            ));
        } else if path.file_name().is_none() || text.ends_with('/') {
            errors.push(FieldError::new(
                "control.socket",
                &text,
                "must name a socket file, not a folder",
            ));
        } else if text.len() > 107 {
            // sun_path holds 108 bytes with the terminating NUL.
            errors.push(FieldError::new(
                "control.socket",
                &text,
                "is longer than the 107 bytes a unix socket path may have",
            ));
        }
    }
    if let Some(m) = &c.metrics {
        match m.value() {
            Err(why) => errors.push(FieldError::new("control.metrics", m, why)),
            Ok(addr) if addr.port() == 0 => errors.push(FieldError::new(
                "control.metrics",
                m,
                "needs a fixed port for Prometheus to scrape, e.g. 9469",
            )),
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const PORT: &str = "[[port]]\nname = \"a\"\nrole = \"both\"\ndevice = \"net_null0\"\n";

    #[test]
    fn defaults() {
        let c = Config::parse(PORT, "t.toml").unwrap();
        assert_eq!(
            c.control.socket_path(),
            Some(std::path::Path::new(super::DEFAULT_SOCKET))
        );
        assert_eq!(c.control.metrics_address(), None);
        assert!(!c.control.watch_config);
    }

    #[test]
    fn good_control_sections() {
        for (text, socket, metrics) in [
            ("socket = \"\"", None, None),
            (
                "socket = \"/tmp/a.sock\"\nmetrics = \"127.0.0.1:9469\"\nwatch_config = true",
                Some("/tmp/a.sock"),
                Some("127.0.0.1:9469"),
            ),
            (
                "metrics = \"[::1]:9469\"",
                Some(super::DEFAULT_SOCKET),
                Some("[::1]:9469"),
            ),
            (
                "metrics = \"0.0.0.0:9469\"",
                Some(super::DEFAULT_SOCKET),
                Some("0.0.0.0:9469"),
            ),
        ] {
            let c = Config::parse(&format!("{PORT}[control]\n{text}\n"), "t.toml")
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                c.control.socket_path(),
                socket.map(std::path::Path::new),
                "{text}"
            );
            assert_eq!(
                c.control.metrics_address(),
                metrics.map(|m| m.parse().unwrap()),
                "{text}"
            );
        }
    }

    /// Each bad `[control]` is refused naming the field and the value.
    #[test]
    fn bad_control_sections_name_the_field() {
        for (text, field, value) in [
            (
                "socket = \"control.sock\"",
                "control.socket",
                "control.sock",
            ),
            ("socket = \"run/x.sock\"", "control.socket", "run/x.sock"),
            (
                "socket = \"/run/appliance/\"",
                "control.socket",
                "/run/appliance/",
            ),
            ("socket = \"/\"", "control.socket", "/"),
            (
                &format!("socket = \"/{}\"", "a".repeat(120)),
                "control.socket",
                "aaaa",
            ),
            (
                "metrics = \"localhost:9469\"",
                "control.metrics",
                "localhost:9469",
            ),
            ("metrics = \"127.0.0.1\"", "control.metrics", "127.0.0.1"),
            ("metrics = \"127.0.0.1:99999\"", "control.metrics", "99999"),
            (
                "metrics = \"127.0.0.1:0\"",
                "control.metrics",
                "127.0.0.1:0",
            ),
            ("metrics = 9469", "control.metrics", "9469"),
            ("watch_config = \"yes\"", "watch_config", ""),
            ("sock = \"/tmp/a\"", "sock", ""),
            ("socket = 5", "socket", ""),
        ] {
            let err = Config::parse(&format!("{PORT}[control]\n{text}\n"), "bad.toml")
                .expect_err(text)
                .to_string();
            assert!(err.starts_with("bad.toml"), "{err}");
            assert!(err.contains(field), "{text}: {err} does not name {field}");
            assert!(err.contains(value), "{text}: {err} does not quote {value}");
        }
        // Every problem at once.
        let err = Config::parse(
            &format!("{PORT}[control]\nsocket = \"x\"\nmetrics = \"y\"\n"),
            "bad.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("control.socket") && err.contains("control.metrics"),
            "{err}"
        );
    }
}
