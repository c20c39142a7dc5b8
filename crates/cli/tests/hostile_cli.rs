//! The CLI given what a careless or hostile user gives it: each case fails with a clear message,
//! an error exit and no panic, and fails before the work whose results it would lose.

mod common;

use std::process::Output;

use common::{bin, repo, temp_dir};

fn explain(args: &[&str]) -> Output {
    bin()
        .arg("explain")
        .arg("--image")
        .arg(repo("tests/data/images/demo-scene.png"))
        .args(["--question", "What is the color of the star?", "--answer-prefix", "The color of the star is"])
        .args(args)
        .output()
        .unwrap()
}

/// Failed with an error (exit 1, "Error: ..." from anyhow), not a panic (exit 101), and said `want`.
fn fails_saying(out: Output, want: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "exit {:?}: {err}", out.status.code());
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(want), "{err} (wanted {want})");
    err
}

#[test]
fn an_unwritable_output_fails_before_the_model_loads_and_writes_nothing() {
    let dir = temp_dir("cli-out");
    std::fs::create_dir_all(&dir).unwrap();
    let map = dir.join("map.png");
    let json = dir.join("no-such-folder/e.json");
    let out = explain(&["--out", map.to_str().unwrap(), "--json", json.to_str().unwrap()]);
    fails_saying(out, "the folder");
    assert!(!map.exists(), "no PNG is written when the JSON cannot be");
    fails_saying(explain(&["--out", dir.join("map.jpeg").to_str().unwrap()]), "must end in .png");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn options_out_of_range_are_errors() {
    let dir = temp_dir("cli-range");
    std::fs::create_dir_all(&dir).unwrap();
    let map = dir.join("map.png");
    let m = map.to_str().unwrap();
    fails_saying(explain(&["--out", m, "--lens-k", "1000000000"]), "lens k 1000000000 is more than 100");
    fails_saying(explain(&["--out", m, "--lens-layer", "99"]), "lens layer 99 does not exist");
    fails_saying(explain(&["--out", m, "--decompose", "3", "--decompose-layer", "99"]), "decompose layer 99 is outside");
    fails_saying(explain(&["--out", m, "--target", "4294967295"]), "outside the vocabulary");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_question_too_long_for_the_model_fails_before_any_weight_is_read() {
    // The model folder has no weights: the position limit must be the error, not the missing file.
    let model = temp_dir("cli-long");
    std::fs::create_dir_all(&model).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(repo("models/scenes-tiny").join(f), model.join(f)).unwrap();
    }
    let question = "What is the color of the star? ".repeat(60);
    let out = bin()
        .args(["run", "--question", &question, "--model"])
        .arg(&model)
        .arg("--image")
        .arg(repo("tests/data/images/demo-scene.png"))
        .output()
        .unwrap();
    let err = fails_saying(out, "positions");
    assert!(err.contains("max_position_embeddings") && err.contains("shorten the question"), "{err}");
    let _ = std::fs::remove_dir_all(model);
}
