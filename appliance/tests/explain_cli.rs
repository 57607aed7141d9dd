//! `appliance explain` through the real binary, on the example configurations: verdicts,
//! the JSON form, exit statuses and errors.

mod common;
use appliance::testing::{has, json_has};
use common::*;
use serde_json::json;

const TESTBED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/testbed.toml");
const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../configs/example-policy.toml"
);

/// Runs `appliance explain -c config flow extra...`: exit status, stdout, stderr.
fn explain(config: &str, flow: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    let out = appliance()
        .args(["explain", "--config", config, flow])
        .args(extra)
        .output()
        .expect("spawn appliance");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

/// The explanation as lines; exit 0 required.
fn lines(config: &str, flow: &str, extra: &[&str]) -> String {
    let (code, stdout, stderr) = explain(config, flow, extra);
    assert_eq!(code, Some(0), "{flow}: {stderr}");
    stdout
}

/// The explanation as JSON; exit 0 required.
fn json(config: &str, flow: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let text = lines(config, flow, &args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Exit 2 and an `error:` line containing `needle`.
fn refused(config: &str, flow: &str, needle: &str) {
    let (code, stdout, stderr) = explain(config, flow, &[]);
    assert_eq!(code, Some(2), "{flow}: {stdout}{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("error") && l.contains(needle)),
        "{needle:?} not in:\n{stderr}"
    );
}

#[test]
fn egress_is_allowed_and_translated_to_the_public_address() {
    let text = lines(TESTBED, "udp 10.0.1.10:5000 -> 198.51.100.10:53", &[]);
    has(
        &text,
        &[
            "class       egress: a new flow from inside, going out\n",
            "rule        egress.default: allow\n",
            "nat         source 10.0.1.10:5000 -> 192.0.2.2:5000 (SNAT pool address",
            "verdict     forward out of wan\n",
            "leaves      udp 192.0.2.2:5000 -> 198.51.100.10:53 ttl 63\n",
            "next hop    192.0.2.1 (gateway) on wan",
            "session     created: inside 10.0.1.10:5000, outside 192.0.2.2:5000",
        ],
    );
}

#[test]
fn smtp_out_is_denied_by_the_egress_rule() {
    let v = json(TESTBED, "tcp 10.0.1.10:40000 -> 198.51.100.10:25", &[]);
    json_has(
        &v,
        &json!({
            "class": "egress",
            "verdict": {"action": "drop", "reason": "egress_denied"},
            "rule": {"set": "egress", "index": 0, "action": "deny",
                     "comment": "no direct SMTP from inside"},
        }),
    );
    assert!(v.get("output").is_none());
}

#[test]
fn unsolicited_ingress_is_dropped() {
    let v = json(TESTBED, "tcp 203.0.113.10:40000 -> 192.0.2.2:22", &[]);
    json_has(
        &v,
        &json!({"port": "wan", "class": "ingress", "verdict": {"reason": "no_forward"}}),
    );
    assert!(v.get("rule").is_none());
}

#[test]
fn the_port_forward_is_admitted_and_translated() {
    let v = json(
        TESTBED,
        "tcp 203.0.113.10:40000 -> 192.0.2.2:8080",
        &["--reply"],
    );
    json_has(
        &v,
        &json!({
            "class": "ingress",
            "verdict": {"action": "forward", "port": "lan"},
            "output": {"dst": "10.0.1.11", "dst_port": 80},
            "rule": {"set": "ingress", "comment": "anyone may use the port forward"},
            "nat": [{"kind": "forward", "comment": "web server on c2"}],
            "reply": {"class": "reply", "output": {"src": "192.0.2.2", "src_port": 8080}},
        }),
    );
}

#[test]
fn ping_to_the_public_address_is_answered() {
    let text = lines(TESTBED, "icmp 203.0.113.10 -> 192.0.2.2", &[]);
    has(
        &text,
        &[
            "class       local: addressed to the appliance itself\n",
            "verdict     answered by the appliance on wan\n",
            "leaves      icmp 192.0.2.2 -> 203.0.113.10 type echo-reply id 1 ttl 64\n",
        ],
    );
}

#[test]
fn egress_reply_comes_back_reverse_translated() {
    let text = lines(
        TESTBED,
        "tcp 10.0.1.10:40000 -> 203.0.113.10:443",
        &["--reply"],
    );
    has(
        &text,
        &[
            "reply       tcp 203.0.113.10:443 -> 192.0.2.2:40000 flags syn,ack mss 1460 ttl 64 on wan\n",
            "  class     reply: a packet of an existing session\n",
            "  verdict   forward out of lan\n",
            "  leaves    tcp 203.0.113.10:443 -> 10.0.1.10:40000 flags syn,ack mss 1460 ttl 63\n",
        ],
    );
}

#[test]
fn example_policy_static_mapping_forward_and_probe() {
    for (flow, want) in [
        (
            "tcp 10.0.1.40:40000 -> 198.51.100.10:443",
            json!({
                "output": {"src": "203.0.113.40", "mss": 1400},
                "nat": [{"kind": "static", "comment": "mail relay"}],
            }),
        ),
        (
            "tcp 198.51.100.7:40000 -> 203.0.113.2:443",
            json!({
                "verdict": {"reason": "ingress_denied"},
                "rule": {"comment": "known bad network"},
            }),
        ),
        (
            "udp 192.0.2.9:5000 -> 203.0.113.17:27016",
            json!({
                "verdict": {"action": "forward"},
                "output": {"dst": "10.0.1.11", "dst_port": 27016},
            }),
        ),
        (
            "tcp 168.63.129.16:50000 -> 203.0.113.2:8080",
            json!({
                "class": "local",
                "verdict": {"action": "answer"},
                "output": {"tcp_flags": "syn,ack"},
            }),
        ),
        (
            "udp 10.0.1.10:5000 -> 192.0.2.80:53",
            json!({
                "verdict": {"reason": "egress_denied"},
                "rule": {"comment": "blocked networks"},
            }),
        ),
    ] {
        json_has(&json(EXAMPLE, flow, &[]), &want);
    }
}

#[test]
fn bad_flow_expressions_exit_2() {
    refused(
        TESTBED,
        "sctp 1.2.3.4:1 -> 5.6.7.8:2",
        "at \"sctp\" (word 1)",
    );
    refused(TESTBED, "udp 10.0.1.10 -> 5.6.7.8:2", "\"10.0.1.10\"");
    refused(TESTBED, "udp 10.0.1.10:5000 ->", "ends too early");
    refused(
        TESTBED,
        "tcp 1.2.3.4:1 -> 5.6.7.8:2 flags syn,nope",
        "syn,nope",
    );
    refused(TESTBED, "", "a protocol");
}

#[test]
fn unknown_port_exits_2() {
    refused(
        TESTBED,
        "udp 1.2.3.4:1 -> 192.0.2.2:2 on dmz",
        "no port is named \"dmz\": the ports are lan, wan",
    );
}

#[test]
fn bad_configuration_exits_2() {
    refused(
        "/nonexistent/appliance.toml",
        "udp 10.0.1.10:5000 -> 198.51.100.10:53",
        "/nonexistent/appliance.toml",
    );
    let dir = scratch("explain-bad-config");
    let bad = write(
        &dir,
        "bad.toml",
        "[[port]]\nname = \"a\"\nrole = \"inside\"\ndevice = \"net_null0\"\n\
         [[egress.rule]]\naction = \"deny\"\ndst = [\"10.0.0.300\"]\n",
    );
    refused(
        bad.to_str().unwrap(),
        "udp 10.0.1.10:5000 -> 198.51.100.10:53",
        "egress.rule[0].dst[0]",
    );
}

#[test]
fn missing_flow_exits_2_and_help_shows_the_forms() {
    let out = appliance()
        .args(["explain", "--config", TESTBED])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = appliance().args(["explain", "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    has(
        &help,
        &[
            "tcp|udp SRC:PORT -> DST:PORT [on PORT]",
            "icmp SRC -> DST [on PORT]",
        ],
    );
}
