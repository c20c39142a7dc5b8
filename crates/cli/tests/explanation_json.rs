//! The explanation JSON stays what it was. tests/data/explanations holds two documents written by
//! `llava-lens explain` (commands below; first before the explanation became one typed value,
//! rewritten once when the image normalisation took numpy's rounding, which moved pixel values
//! by one f32 step and map values by up to 5.3e-5): read back and written again they must be byte
//! for byte the same, and the CLI today must write the same document for the same inputs
//! (structure, ids and texts exactly, numbers within 1e-5: another machine's lavapipe may round
//! differently; on the machine that wrote them the output was byte-identical apart from the
//! timings).

mod common;

use common::{bin, repo};
use llava_lens_explain::Explanation;
use serde_json::Value;

const RICH: &str = "tests/data/explanations/demo-scene-rich.json";
const CONTRAST: &str = "tests/data/explanations/demo-scene-contrast.json";

fn args(which: &str) -> Vec<&'static str> {
    let common = [
        "explain",
        "--model",
        "models/scenes-tiny",
        "--image",
        "tests/data/images/demo-scene.png",
        "--question",
        "What is the color of the star?",
        "--answer-prefix",
        "The color of the star is",
    ];
    let extra: &[&str] = if which == RICH {
        &["--top-k-heads", "2", "--lens-layer", "1", "--decompose", "3,10", "--head-map", "3.0"]
    } else {
        &["--target", "purple", "--contrast", "red", "--lens-k", "0", "--authors-style"]
    };
    common.iter().chain(extra).copied().collect()
}

#[test]
fn committed_explanations_read_back_and_write_byte_for_byte() {
    for file in [RICH, CONTRAST] {
        let text = std::fs::read_to_string(repo(file)).unwrap();
        let e = Explanation::from_json(&text).unwrap_or_else(|err| panic!("{file}: {err}"));
        assert!(e.to_json_pretty().unwrap() == text, "{file}: the typed explanation does not write the committed bytes");
    }
}

/// Equal values: objects with the same keys, arrays of the same length, equal strings, booleans
/// and integers, floats within 1e-5 (timings aside).
fn same(path: &str, a: &Value, b: &Value) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>(), "{path}: keys");
            for (k, v) in x {
                if k != "timings_ms" {
                    same(&format!("{path}.{k}"), v, &y[k]);
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: length");
            x.iter().zip(y).enumerate().for_each(|(i, (v, w))| same(&format!("{path}[{i}]"), v, w));
        }
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{path}: {x} vs {y}");
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}

#[test]
fn the_cli_writes_the_committed_explanations_for_the_same_inputs() {
    for file in [RICH, CONTRAST] {
        let out_dir = common::temp_dir("explanation-json");
        std::fs::create_dir_all(&out_dir).unwrap();
        let json = out_dir.join("e.json");
        let st = bin()
            .current_dir(repo(""))
            .args(args(file))
            .arg("--out")
            .arg(out_dir.join("map.png"))
            .arg("--json")
            .arg(&json)
            .output()
            .unwrap();
        assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
        let got: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let want: Value = serde_json::from_str(&std::fs::read_to_string(repo(file)).unwrap()).unwrap();
        same(file, &got, &want);
        let _ = std::fs::remove_dir_all(out_dir);
    }
}
