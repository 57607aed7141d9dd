//! The documents say what the code does: the drop reasons they name are counters, the
//! README's reload section names what a reload refuses, and no link leaves the repository.

use appliance::pipeline::Reason;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The README and every Markdown file under `docs/`, with their text.
fn documents() -> Vec<(PathBuf, String)> {
    let root = repo();
    let mut paths = vec![root.join("README.md")];
    if let Ok(dir) = std::fs::read_dir(root.join("docs")) {
        paths.extend(
            dir.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "md")),
        );
    }
    paths
        .into_iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, text)
        })
        .collect()
}

/// The words in backquotes of `text` that stand where a drop reason does: right before
/// "drop reason", or right after "dropped (" or "drop (".
fn named_drop_reasons(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let quoted: Vec<&str> = text.split('`').collect();
    for (i, word) in quoted.iter().enumerate().skip(1).step_by(2) {
        let before = quoted[i - 1];
        let after = quoted.get(i + 1).copied().unwrap_or("");
        let named = after.trim_start().starts_with("drop reason")
            || before.ends_with("dropped (")
            || before.ends_with("drop (");
        if named {
            found.push(word.to_string());
        }
    }
    found
}

#[test]
fn drop_reasons_the_documents_name_are_counters() {
    let counters: Vec<&str> = (0..Reason::COUNT)
        .filter_map(Reason::from_index)
        .map(Reason::name)
        .collect();
    let mut checked = 0;
    for (path, text) in documents() {
        for name in named_drop_reasons(&text) {
            assert!(
                counters.contains(&name.as_str()),
                "{} names the drop reason `{name}`, which no counter has",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(
        checked > 0,
        "no drop reason named in the documents: the pattern is stale"
    );
}

#[test]
fn the_readme_names_what_a_reload_refuses() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let start = readme
        .find("**Reload**")
        .expect("the README has a **Reload** paragraph");
    let section = &readme[start..];
    let refused = &section[..section
        .find("Everything else reloads")
        .expect("the paragraph says what else reloads")];
    // What control::reload refuses (restart_only_changes and the SNAT pool check).
    for field in [
        "eal.",
        "dataplane.",
        "`device`",
        "nat.max_sessions",
        "nat.port_range",
        "nat.addresses",
        "control.socket",
        "control.metrics",
    ] {
        assert!(
            refused.contains(field),
            "the README's reload paragraph does not name {field} among what needs a restart"
        );
    }
}

#[test]
fn no_document_points_outside_the_repository() {
    for (path, text) in documents() {
        for (n, line) in text.lines().enumerate() {
            assert!(
                !line.contains("../shared/") && !line.contains("](../"),
                "{}:{}: points outside the repository: {line}",
                path.display(),
                n + 1
            );
        }
    }
}
