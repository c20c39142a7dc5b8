//! What the CLI's end-to-end tests share: the binary, repository paths, scratch folders, and
//! "it succeeded and printed JSON".

#![allow(dead_code)] // each test file uses its own subset

use std::path::PathBuf;
use std::process::{Command, Output};

/// The built `llava-lens`, without a `LLAVA_LENS_MODEL` from the caller's environment (tests
/// that rely on the default model must find the bundled one).
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_llava-lens"));
    c.env_remove("LLAVA_LENS_MODEL");
    c
}

pub fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

/// A fresh, empty path under the temp dir, unique per test process.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("llava-lens-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The command succeeded (else its stderr is the failure message) and printed one JSON value.
pub fn json_of(out: Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}
