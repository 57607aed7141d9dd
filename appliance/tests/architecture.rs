//! The code matches `docs/architecture.md`: every module of the library has a layer in the
//! document's table, no product code imports a module of its own layer or above, and the
//! files of a module import each other without a circle.
//!
//! Imports are read from the source text: every `crate::m` and `super::x` path outside
//! comments, strings and test code (`#[cfg(test)]` items, and the files they declare).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The layer table of the document: module name -> layer.
fn layers() -> BTreeMap<String, u32> {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/architecture.md");
    let text = std::fs::read_to_string(&doc).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
    // The table of the "## Layers" section: `| 3 | `config` | ... |`.
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("Layers"))
        .unwrap_or_else(|| panic!("{}: no \"## Layers\" section", doc.display()));
    let section = section.split("\n### ").next().unwrap_or(section);
    let mut out = BTreeMap::new();
    for line in section.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 {
            continue;
        }
        let (Ok(layer), Some(name)) = (
            cells[1].parse::<u32>(),
            cells[2].strip_prefix('`').and_then(|c| c.strip_suffix('`')),
        ) else {
            continue;
        };
        out.insert(name.to_string(), layer);
    }
    assert!(out.len() > 5, "no layer table found in {}", doc.display());
    out
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file: `pipeline/fast.rs` -> [pipeline, fast]; `flow/mod.rs` -> [flow].
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// `text` with comments, string and character literals blanked out (newlines kept).
fn code_only(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    let at = |i: usize| b.get(i).copied().unwrap_or('\0');
    while i < b.len() {
        let c = b[i];
        if c == '/' && at(i + 1) == '/' {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if b[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        } else if c == 'r' && (at(i + 1) == '"' || (at(i + 1) == '#' && !is_ident(at(i - 1)))) {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            if at(j) != '"' {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (1..=hashes).all(|k| at(j + k) == '#') {
                    j += 1 + hashes;
                    break;
                }
                if b[j] == '\n' {
                    out.push('\n');
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                if at(i) == '\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && (at(i + 1) == '\\' || at(i + 2) == '\'') {
            // A character literal ('x', '\n', '\''); else a lifetime.
            i += if at(i + 1) == '\\' { 2 } else { 1 };
            while i < b.len() && b[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The end (exclusive) of the item starting at `from`: its `;` or its closing brace.
fn item_end(code: &[char], from: usize) -> usize {
    let mut depth = 0usize;
    let mut i = from;
    while i < code.len() {
        match code[i] {
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            ';' if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    code.len()
}

/// `code` without its `#[cfg(test)]` items; and the names of the `mod x;` among them (their
/// files are test code too).
fn without_tests(code: &str) -> (String, Vec<String>) {
    let mark: Vec<char> = "#[cfg(test)]".chars().collect();
    let chars: Vec<char> = code.chars().collect();
    let mut out = String::new();
    let mut test_mods = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i..].starts_with(&mark) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let end = item_end(&chars, i + mark.len());
        let item: String = chars[i + mark.len()..end].iter().collect();
        let words: Vec<&str> = item.split_whitespace().collect();
        if let [.., "mod", name] = words.as_slice() {
            if let Some(name) = name.strip_suffix(';') {
                test_mods.push(name.to_string());
            }
        }
        out.extend(item.chars().filter(|&c| c == '\n'));
        i = end;
    }
    (out, test_mods)
}

/// The identifiers that follow `prefix` in `code` (`crate::` -> `config` of
/// `crate::config::Config`, and each of `crate::{a, b::c}`).
fn after(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (k, _) in code.match_indices(prefix) {
        if k > 0 && is_ident(code[..k].chars().last().unwrap()) {
            continue;
        }
        let tail = &code[k + prefix.len()..];
        if let Some(group) = tail.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for part in inner.split(',') {
                let name: String = part.trim().chars().take_while(|&c| is_ident(c)).collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = tail.chars().take_while(|&c| is_ident(c)).collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// One product file: its module path and what it imports.
struct File {
    module: Vec<String>,
    /// Top-level modules named by `crate::x`.
    crate_refs: BTreeSet<String>,
    /// Modules named by `super::x` (siblings) and `crate::<own top>::x` (for the top's files).
    sibling_refs: BTreeSet<String>,
}

fn product_files() -> Vec<File> {
    let mut paths = Vec::new();
    rust_files(&src(), &mut paths);
    paths.sort();
    let mut test_files: BTreeSet<Vec<String>> = BTreeSet::new();
    let mut parsed = Vec::new();
    for p in &paths {
        let module = module_of(p);
        let text = std::fs::read_to_string(p).unwrap();
        let (code, test_mods) = without_tests(&code_only(&text));
        for m in test_mods {
            // `mod x;` in foo/mod.rs or in foo.rs is the module foo::x; in lib.rs, x.
            let mut child = if module.as_slice() == ["lib"] {
                Vec::new()
            } else {
                module.clone()
            };
            child.push(m);
            test_files.insert(child);
        }
        parsed.push((module, code));
    }
    parsed
        .into_iter()
        .filter(|(m, _)| !test_files.contains(m) && m.first().is_some_and(|t| t != "testing"))
        .filter(|(m, _)| m.as_slice() != ["lib"] && m.as_slice() != ["main"])
        .map(|(module, code)| {
            let mut crate_refs = after(&code, "crate::");
            crate_refs.retain(|r| r != "self");
            let mut sibling_refs = after(&code, "super::");
            if module.len() == 2 {
                sibling_refs.extend(after(&code, &format!("crate::{}::", module[0])));
            }
            File {
                module,
                crate_refs,
                sibling_refs,
            }
        })
        .collect()
}

#[test]
fn every_module_has_a_layer() {
    let layers = layers();
    let lib = code_only(&std::fs::read_to_string(src().join("lib.rs")).unwrap());
    let declared: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').trim().to_string())
        .collect();
    assert!(declared.len() > 5, "no modules found in lib.rs");
    let missing: Vec<&String> = declared
        .iter()
        .filter(|m| !layers.contains_key(*m))
        .collect();
    assert!(
        missing.is_empty(),
        "modules without a layer in docs/architecture.md: {missing:?}"
    );
    let stale: Vec<&String> = layers.keys().filter(|m| !declared.contains(*m)).collect();
    assert!(
        stale.is_empty(),
        "docs/architecture.md names modules lib.rs does not have: {stale:?}"
    );
}

#[test]
fn no_module_imports_its_own_layer_or_above() {
    let layers = layers();
    let mut wrong = Vec::new();
    let files = product_files();
    assert!(files.len() > 40, "only {} product files found", files.len());
    for f in &files {
        let top = &f.module[0];
        let Some(&own) = layers.get(top) else {
            continue; // every_module_has_a_layer names it
        };
        for r in &f.crate_refs {
            if r == top {
                continue;
            }
            match layers.get(r) {
                Some(&l) if l < own => {}
                Some(&l) => wrong.push(format!(
                    "{} (layer {own}) imports crate::{r} (layer {l})",
                    f.module.join("/")
                )),
                None => {}
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn files_of_a_module_import_each_other_without_a_circle() {
    let files = product_files();
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| f.module.clone()).collect();
    // Edges between sibling files (mod.rs, the parent, is not a sibling).
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for f in &files {
        if f.module.len() < 2 {
            continue;
        }
        let parent = &f.module[..f.module.len() - 1];
        for r in &f.sibling_refs {
            let mut to = parent.to_vec();
            to.push(r.clone());
            if to != f.module && modules.contains(&to) {
                edges.entry(f.module.clone()).or_default().insert(to);
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit(
        n: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        path: &mut Vec<Vec<String>>,
        circles: &mut Vec<String>,
    ) {
        state.insert(n.clone(), 1);
        path.push(n.clone());
        for m in edges.get(n).into_iter().flatten() {
            match state.get(m) {
                Some(1) => {
                    let start = path.iter().position(|p| p == m).unwrap();
                    let names: Vec<String> = path[start..]
                        .iter()
                        .chain([m])
                        .map(|p| p.join("/"))
                        .collect();
                    circles.push(names.join(" -> "));
                }
                Some(_) => {}
                None => visit(m, edges, state, path, circles),
            }
        }
        path.pop();
        state.insert(n.clone(), 2);
    }
    let mut state = BTreeMap::new();
    let mut circles = Vec::new();
    for n in edges.keys() {
        if !state.contains_key(n) {
            visit(n, &edges, &mut state, &mut Vec::new(), &mut circles);
        }
    }
    assert!(
        circles.is_empty(),
        "files importing each other in a circle:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_reader_sees_through_comments_strings_and_tests() {
    let text = r##"
// use crate::dataplane::x;
/* crate::control */ use crate::packet::Ipv4Packet;
let s = "crate::explain"; let r = r#"crate::main"#; let c = '"'; let l: &'a str;
use crate::{flow::FlowKey, nat};
#[cfg(test)]
mod tests {
    use crate::testing::Net;
}
#[cfg(test)]
mod proptests;
fn f() -> super::shard::Shard { todo!() }
"##;
    let (code, test_mods) = without_tests(&code_only(text));
    let refs = after(&code, "crate::");
    assert_eq!(
        refs,
        ["flow", "nat", "packet"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    assert_eq!(test_mods, vec!["proptests".to_string()]);
    assert_eq!(
        after(&code, "super::"),
        ["shard"].map(String::from).into_iter().collect()
    );
}
