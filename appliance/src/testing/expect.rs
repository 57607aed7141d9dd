//! Assertions on what a command or `explain` printed: lines in a text, fields in JSON.

use serde_json::Value;

/// Asserts that each of `wants` is in `text`.
///
/// # Panics
/// At the first one missing, printing `text`.
pub fn has(text: &str, wants: &[&str]) {
    for want in wants {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
}

/// Asserts that `have` holds everything `want` holds: each key of a `want` object, with a
/// value that holds the wanted one; each element of a `want` array, at the same index; any
/// other value, equal. What `want` leaves out may be anything, or absent.
///
/// # Panics
/// At the first difference, naming where it is and printing `have`.
pub fn json_has(have: &Value, want: &Value) {
    if let Some(diff) = difference(have, want, "") {
        panic!("{diff}, in:\n{have:#}");
    }
}

fn difference(have: &Value, want: &Value, at: &str) -> Option<String> {
    let inner = |h: Option<&Value>, w, key: &dyn std::fmt::Display| {
        let at = format!("{at}/{key}");
        match h {
            Some(h) => difference(h, w, &at),
            None => Some(format!("{at} is absent, wanted {w}")),
        }
    };
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => w.iter().find_map(|(k, w)| inner(h.get(k), w, k)),
        (Value::Array(h), Value::Array(w)) => {
            (w.iter().enumerate()).find_map(|(i, w)| inner(h.get(i), w, &i))
        }
        _ => (have != want).then(|| format!("{at} is {have}, wanted {want}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_has_ignores_what_is_not_wanted() {
        let have = json!({"a": {"b": 1, "c": [1, {"d": "x", "e": 2}]}, "f": null});
        json_has(&have, &json!({"a": {"c": [1, {"d": "x"}]}}));
        json_has(&have, &json!({"f": null}));
    }

    #[test]
    #[should_panic(expected = "/a/c/1/d is \"x\", wanted \"y\"")]
    fn json_has_names_a_difference() {
        json_has(
            &json!({"a": {"c": [1, {"d": "x"}]}}),
            &json!({"a": {"c": [1, {"d": "y"}]}}),
        );
    }

    #[test]
    #[should_panic(expected = "/a/b is absent, wanted null")]
    fn json_has_wants_a_wanted_null_present() {
        json_has(&json!({"a": {}}), &json!({"a": {"b": null}}));
    }
}
