//! The control-socket protocol: one JSON object per line each way, versioned.
//!
//! ```text
//! -> {"v":1,"cmd":"stats"}
//! <- {"v":1,"ok":true,"data":{...}}
//! <- {"v":1,"ok":false,"error":"unknown command \"frob\""}
//! ```
//! A request is at most [`MAX_REQUEST`] bytes; anything else (not JSON, another version, an
//! unknown command, too long) gets an error reply and never reaches the data path.

use serde::{Deserialize, Serialize};

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// Largest request line accepted, newline included.
pub const MAX_REQUEST: usize = 64 * 1024;

/// A request as sent on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Request {
    /// Protocol version; must be [`VERSION`].
    pub v: u32,
    /// What to do.
    #[serde(flatten)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Build and protocol version, uptime.
    Version,
    /// Counters: per port, per worker, drops by reason.
    Stats,
    /// Live sessions, optionally filtered, at most `limit`.
    Sessions {
        /// Filter expression (see `appliance sessions --help`).
        #[serde(default)]
        filter: Option<String>,
        /// Most sessions to return.
        #[serde(default)]
        limit: Option<usize>,
    },
    /// Re-read the configuration file and publish the new policy.
    Reload,
    /// The running policy: generation, source, summary.
    Policy,
    /// Make the health probe fail (HTTP 503, a reset to a TCP probe's SYN) while traffic
    /// keeps flowing, so that a load balancer sends new flows elsewhere.
    Drain,
    /// Make the health probe pass again after a drain.
    Resume,
}

/// A reply as sent on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Protocol version of the reply.
    pub v: u32,
    /// Whether the command succeeded.
    pub ok: bool,
    /// The result, when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// What went wrong, when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    /// A success with `data`.
    pub fn ok(data: serde_json::Value) -> Self {
        Response {
            v: VERSION,
            ok: true,
            data: Some(data),
            error: None,
        }
    }

    /// A failure explaining `error`.
    pub fn error(error: impl Into<String>) -> Self {
        Response {
            v: VERSION,
            ok: false,
            data: None,
            error: Some(error.into()),
        }
    }
}

/// Parses one request line, or says what is wrong with it.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    if line.len() > MAX_REQUEST {
        return Err(format!(
            "request of {} bytes is over the {MAX_REQUEST}-byte limit",
            line.len()
        ));
    }
    let text = std::str::from_utf8(line).map_err(|_| "request is not UTF-8".to_string())?;
    let mut value: serde_json::Value =
        serde_json::from_str(text.trim()).map_err(|e| format!("request is not JSON: {e}"))?;
    match value.get("v").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(VERSION) => {}
        Some(v) => {
            return Err(format!(
                "protocol version {v} is not supported (this is {VERSION})"
            ))
        }
        None => return Err("request has no protocol version \"v\"".to_string()),
    }
    if let Some(cmd) = value.get("cmd").and_then(serde_json::Value::as_str) {
        const KNOWN: [&str; 7] = [
            "version", "stats", "sessions", "reload", "policy", "drain", "resume",
        ];
        if !KNOWN.contains(&cmd) {
            return Err(format!(
                "unknown command {cmd:?} (known: {})",
                KNOWN.join(", ")
            ));
        }
    } else {
        return Err("request has no \"cmd\"".to_string());
    }
    // The version is checked; what remains is the command with its arguments, and any field
    // it does not have is an error (serde ignores extra fields of argument-less commands).
    if let Some(obj) = value.as_object_mut() {
        obj.remove("v");
        let takes: &[&str] = match obj.get("cmd").and_then(serde_json::Value::as_str) {
            Some("sessions") => &["cmd", "filter", "limit"],
            _ => &["cmd"],
        };
        if let Some(extra) = obj.keys().find(|k| !takes.contains(&k.as_str())) {
            return Err(format!("bad request: unknown field {extra:?}"));
        }
    }
    let command = serde_json::from_value(value).map_err(|e| format!("bad request: {e}"))?;
    Ok(Request {
        v: VERSION,
        command,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_command() {
        for command in [
            Command::Version,
            Command::Stats,
            Command::Sessions {
                filter: Some("proto tcp".into()),
                limit: Some(10),
            },
            Command::Sessions {
                filter: None,
                limit: None,
            },
            Command::Reload,
            Command::Policy,
            Command::Drain,
            Command::Resume,
        ] {
            let r = Request {
                v: VERSION,
                command,
            };
            let line = serde_json::to_string(&r).unwrap();
            assert_eq!(parse_request(line.as_bytes()).unwrap(), r, "{line}");
        }
    }

    #[test]
    fn bad_requests_say_why() {
        let long = format!(
            "{{\"v\":1,\"cmd\":\"stats\",\"x\":\"{}\"}}",
            "a".repeat(MAX_REQUEST)
        );
        for (line, why) in [
            ("", "not JSON"),
            ("hello", "not JSON"),
            ("[1,2]", "no protocol version"),
            ("{\"cmd\":\"stats\"}", "no protocol version"),
            ("{\"v\":2,\"cmd\":\"stats\"}", "version 2"),
            ("{\"v\":1}", "no \"cmd\""),
            ("{\"v\":1,\"cmd\":\"frob\"}", "unknown command \"frob\""),
            ("{\"v\":1,\"cmd\":\"stats\",\"extra\":1}", "bad request"),
            ("{\"v\":1,\"cmd\":\"drain\",\"for\":30}", "bad request"),
            (
                "{\"v\":1,\"cmd\":\"sessions\",\"limit\":\"x\"}",
                "bad request",
            ),
            (long.as_str(), "limit"),
        ] {
            let err = parse_request(line.as_bytes()).unwrap_err();
            assert!(err.contains(why), "{line:.40}: {err}");
        }
        assert!(parse_request(&[0xff, 0xfe]).unwrap_err().contains("UTF-8"));
    }
}
