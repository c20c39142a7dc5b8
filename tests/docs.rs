//! Every file a doc or a comment points to exists in the repository: Markdown links in README.md
//! and docs/, and paths under the repository's own folders (crates/, docs/, scripts/, shaders/,
//! web/, tests/, models/) anywhere in the committed text files. A doc named without its folder
//! must say where it is (docs/METHOD.md, never the bare file name). Runs in `cargo test`, so in CI.

use std::path::{Path, PathBuf};

const TOP: [&str; 7] = ["crates/", "docs/", "scripts/", "shaders/", "web/", "tests/", "models/"];
const TEXT: [&str; 11] = ["rs", "md", "wgsl", "sh", "mjs", "py", "toml", "html", "css", "json", "yml"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The committed text files (git's list: generated and ignored files do not count).
fn committed() -> Vec<PathBuf> {
    let out = std::process::Command::new("git").arg("ls-files").current_dir(root()).output().expect("git ls-files runs");
    assert!(out.status.success(), "git ls-files: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(PathBuf::from)
        .filter(|p| p.extension().and_then(|e| e.to_str()).is_some_and(|e| TEXT.contains(&e)))
        .filter(|p| !p.starts_with("tests/data") && !p.starts_with("docs/demo-model"))
        .collect()
}

/// Path-like words of `text`: runs of path characters that start with one of the repository's
/// folders (after a non-path character), trimmed of sentence punctuation.
fn paths_in(text: &str) -> Vec<String> {
    let is_path = |c: char| c.is_ascii_alphanumeric() || "_./-".contains(c);
    let mut out = Vec::new();
    let bytes: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let starts = (i == 0 || !is_path(bytes[i - 1])) && TOP.iter().any(|t| bytes[i..].iter().take(t.len()).copied().eq(t.chars()));
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < bytes.len() && is_path(bytes[j]) {
            j += 1;
        }
        let word: String = bytes[i..j].iter().collect();
        // A placeholder or pattern ("tests/ops/*.rs", "{a,b}", "<name>") is not a path.
        let next = bytes.get(j).copied().unwrap_or(' ');
        if !"*{<$".contains(next) {
            out.push(word.trim_end_matches(['.', ',', ':', ';', '-']).to_string());
        }
        i = j;
    }
    out
}

/// Targets of Markdown links `[text](target)` that are not web addresses or anchors.
fn links_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = rest[..end].split('#').next().unwrap_or("").trim();
        if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
            out.push(target.to_string());
        }
        rest = &rest[end..];
    }
    out
}

#[test]
fn every_file_a_doc_or_comment_names_exists() {
    let root = root();
    let mut missing = Vec::new();
    for file in committed() {
        let Ok(text) = std::fs::read_to_string(root.join(&file)) else { continue };
        for p in paths_in(&text) {
            // Build outputs and installed tools are made by the scripts, not committed.
            if p.contains("node_modules") || p.starts_with("crates/fuzz/corpus") || p.starts_with("crates/fuzz/artifacts") {
                continue;
            }
            if !root.join(&p).exists() {
                missing.push(format!("{}: {p}", file.display()));
            }
        }
        if file.extension().is_some_and(|e| e == "md") {
            let dir = file.parent().unwrap_or(Path::new(""));
            for l in links_in(&text) {
                if !root.join(dir).join(&l).exists() {
                    missing.push(format!("{}: link ({l})", file.display()));
                }
            }
        }
        // Files outside the repository (a workspace's shared notes) are not there for a reader.
        // The needles are built so that this file does not match itself.
        if [concat!("shared", "/docs/"), concat!("..", "/shared")].iter().any(|n| text.contains(n)) {
            missing.push(format!("{}: a reference outside the repository (shared/...)", file.display()));
        }
        // Doc names without their folder: only the top-level README may go bare.
        for (i, _) in text.match_indices(".md") {
            let name_start = text[..i].rfind(|c: char| !(c.is_ascii_alphanumeric() || "_-/".contains(c))).map_or(0, |s| s + 1);
            let name = &text[name_start..i + 3];
            if name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && name != "README.md"
                && !name.contains('/')
                && !root.join(name).exists()
            {
                missing.push(format!("{}: {name} (say where: docs/{name}?)", file.display()));
            }
        }
    }
    missing.sort();
    missing.dedup();
    assert!(missing.is_empty(), "{} references to files that are not in the repository:\n{}", missing.len(), missing.join("\n"));
}

#[test]
fn the_checker_finds_paths_and_links() {
    assert_eq!(paths_in("see crates/model/src/llava.rs, and docs/METHOD.md."), ["crates/model/src/llava.rs", "docs/METHOD.md"]);
    assert_eq!(paths_in("tests/ops/*.rs and mycrates/x"), Vec::<String>::new());
    assert_eq!(links_in("[a](docs/WEB.md#x) [b](https://x.org) [c](../README.md)"), ["docs/WEB.md", "../README.md"]);
}
