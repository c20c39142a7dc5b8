//! `llava-lens batch` as a user runs it: on 12 generated scenes with the demo model, killed
//! part-way and rerun, sharded over two jobs, with three broken rows and a text-only one among the
//! examples.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;

use common::{bin, temp_dir};
use serde_json::Value;

/// Complete lines of a JSONL file (a cut-off last line is not one), parsed.
fn lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |i| &text[..i]);
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: a line does not parse ({e}): {l}", path.display())))
        .collect()
}

/// A line with what differs between two runs of the same example removed: the wall-clock
/// timings (and, for comparing with `explain`, the batch's own id, example and mask coverage).
fn comparable(mut v: Value) -> Value {
    let o = v.as_object_mut().unwrap();
    for k in ["timings_ms", "id", "example", "mask_coverage"] {
        o.remove(k);
    }
    v
}

fn batch(dir: &Path, out: &str, extra: &[&str]) -> std::process::Command {
    let mut c = bin();
    c.current_dir(dir).args(["batch", "--examples", "examples.jsonl", "--out", out]).args(extra);
    c
}

#[test]
fn batch_resumes_after_a_kill_records_bad_rows_and_shards_merge_to_the_whole() {
    let dir = temp_dir("batch");
    let st = bin().args(["scenes", "--n", "12", "--seed", "12345", "--out"]).arg(&dir).output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    // The first question of each scene, then three rows that cannot be explained.
    let all = std::fs::read_to_string(dir.join("examples.jsonl")).unwrap();
    let mut rows: Vec<&str> = all.lines().filter(|l| l.contains("-q0\"")).collect();
    assert_eq!(rows.len(), 12);
    rows.push(r#"{"id": "no-image", "image": "missing.png", "question": "What is the color of the star?"}"#);
    rows.push(r#"{"id": "no-question", "image": "000000.png", "question": ""}"#);
    // Explained, but its mask (read ahead by the loader thread) is not there: still its own error.
    rows.push(r#"{"id": "no-mask", "image": "000000.png", "question": "What is the color of the star?", "mask": "missing.mask.png"}"#);
    // The paper's text-context condition: no image, the answer in the text.
    rows.push(r#"{"id": "text-only", "context": "The star is purple.", "question": "What is the color of the star?", "answer_prefix": "The color of the star is"}"#);
    std::fs::write(dir.join("examples.jsonl"), rows.join("\n") + "\n").unwrap();
    let ids: BTreeSet<String> =
        rows.iter().map(|r| serde_json::from_str::<Value>(r).unwrap()["id"].as_str().unwrap().to_string()).collect();

    // Killed once three lines are written (a state of the file, whatever the machine's speed).
    let out = dir.join("out.jsonl");
    let mut child = batch(&dir, "out.jsonl", &[]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    loop {
        if lines(&out).len() >= 3 {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("batch ended ({status}) before it could be killed");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = lines(&out).len();
    assert!((3..ids.len()).contains(&before), "{before} lines before the kill");
    // As if the kill had landed in the middle of a write.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&out)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"id\": \"000011-q0\", \"attent"))
        .unwrap();

    let rerun = batch(&dir, "out.jsonl", &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&rerun.stderr);
    assert!(rerun.status.success(), "{stderr}");
    assert!(stderr.contains("dropped a cut-off last line") && stderr.contains(&format!("{before} already in")), "{stderr}");
    assert!(stderr.contains("recorded 3 errors"), "{stderr}");
    let done = lines(&out);
    let got: Vec<String> = done.iter().map(|l| l["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(got.len(), ids.len(), "every id exactly once: {got:?}");
    assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), ids);
    let by_id = |id: &str| done.iter().find(|l| l["id"] == id).unwrap().clone();
    assert!(by_id("no-image")["error"].as_str().unwrap().contains("missing.png"), "{}", by_id("no-image"));
    assert!(by_id("no-question")["error"].as_str().unwrap().contains("question is missing or empty"));
    let no_mask = by_id("no-mask");
    assert!(no_mask["error"].as_str().unwrap().starts_with("reading the mask missing.mask.png: "), "{no_mask}");
    // The mask as the grid sees it, recomputed from the scene's label map (the model's view is
    // the whole 168-pixel scene: each patch is a 14-pixel square).
    let l = by_id("000003-q0");
    let labels = image::open(dir.join(l["example"]["mask"].as_str().unwrap())).unwrap().into_luma8();
    let (g, id) = (l["grid"].as_u64().unwrap() as u32, l["example"]["mask_value"].as_u64().unwrap() as u8);
    let side = labels.width() / g;
    let want: Vec<f64> = (0..g * g)
        .map(|p| {
            let (px, py) = (p % g * side, p / g * side);
            let n = (0..side * side).filter(|i| labels.get_pixel(px + i % side, py + i / side).0[0] == id).count();
            n as f64 / (side * side) as f64
        })
        .collect();
    let got: Vec<f64> = l["mask_coverage"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6) && want.iter().any(|&c| c > 0.0), "{got:?} vs {want:?}");
    // The example as read rides along (what reports group and score by).
    let e = &by_id("000003-q0")["example"];
    assert!(e["answer"].is_string() && e["tags"].as_array().is_some_and(|t| t.len() == 3), "{e}");

    // A line is `explain --json` for the same example (the image path as the file gives it).
    let text = by_id("text-only");
    assert!(text.get("error").is_none() && text["grid"] == 0 && text["patch_scores"].as_array().unwrap().is_empty(), "{text}");
    for id in ["000000-q0", "000011-q0", "text-only"] {
        let line = by_id(id);
        let e = &line["example"];
        let json = dir.join(format!("{id}.json"));
        let mut explain = bin();
        explain.current_dir(&dir).args(["explain", "--question", e["question"].as_str().unwrap()]);
        for (flag, field) in [("--image", "image"), ("--context", "context")] {
            if let Some(v) = e[field].as_str() {
                explain.args([flag, v]);
            }
        }
        let st = explain
            .args(["--answer-prefix", e["answer_prefix"].as_str().unwrap(), "--out", "map.png", "--json"])
            .arg(&json)
            .output()
            .unwrap();
        assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
        let explained: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(comparable(line), comparable(explained), "{id}: the batch line differs from explain --json");
    }

    // Two shards, concatenated: the same lines as the single run (timings aside).
    for s in ["1/2", "2/2"] {
        let st = batch(&dir, &format!("shard-{}.jsonl", &s[..1]), &["--shard", s]).output().unwrap();
        assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    }
    let (one, two) = (lines(&dir.join("shard-1.jsonl")), lines(&dir.join("shard-2.jsonl")));
    assert!(!one.is_empty() && !two.is_empty(), "both shards hold examples ({} + {})", one.len(), two.len());
    let set = |v: Vec<Value>| -> BTreeSet<String> {
        v.into_iter()
            .map(|mut l| {
                l.as_object_mut().unwrap().remove("timings_ms");
                l.to_string()
            })
            .collect()
    };
    let merged: Vec<Value> = one.into_iter().chain(two).collect();
    assert_eq!(merged.len(), ids.len());
    assert_eq!(set(merged), set(done.clone()));
    let merged_path = dir.join("merged.jsonl");
    std::fs::write(
        &merged_path,
        [dir.join("shard-1.jsonl"), dir.join("shard-2.jsonl")].iter().map(|p| std::fs::read_to_string(p).unwrap()).collect::<String>(),
    )
    .unwrap();

    // The report on that output, its tables checked against the JSONL read here, and compared
    // with the merged shards (the same examples: the same ranking).
    let st = bin()
        .current_dir(&dir)
        .args(["report", "out.jsonl", "merged.jsonl", "--out", "report", "--top-k", "2", "--bootstrap", "50"])
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    check_report(&dir.join("report"), &done);
    let _ = std::fs::remove_dir_all(dir);
}

/// The report's tables against numbers computed here from the batch lines.
fn check_report(dir: &Path, lines: &[Value]) {
    for f in ["report.html", "mean_head_scores.svg", "top_k_frequency.svg", "best_head_layers.svg"] {
        let text = std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(text.contains("<svg"), "{f} holds a figure");
    }
    let ok: Vec<&Value> = lines.iter().filter(|l| l.get("error").is_none()).collect();
    let report: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!((report["summary"]["examples"].as_u64(), report["error_lines"].as_u64()), (Some(ok.len() as u64), Some(3)));
    let grid = |l: &Value| -> Vec<Vec<f64>> {
        l["head_scores"].as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()).collect()
    };
    let (layers, heads) = (grid(ok[0]).len(), grid(ok[0])[0].len());
    // Mean head scores (the CSV has every head).
    let csv = std::fs::read_to_string(dir.join("mean_head_scores.csv")).unwrap();
    for row in csv.lines().skip(1) {
        let f: Vec<f64> = row.split(',').map(|x| x.parse().unwrap()).collect();
        let want = ok.iter().map(|l| grid(l)[f[0] as usize][f[1] as usize]).sum::<f64>() / ok.len() as f64;
        assert!((f[2] - want).abs() < 1e-5, "mean head {row}: want {want}");
    }
    assert_eq!(csv.lines().count(), 1 + layers * heads);
    // Best-head layers.
    let mut counts = vec![0u64; layers];
    ok.iter().for_each(|l| counts[l["best_head"]["layer"].as_u64().unwrap() as usize] += 1);
    assert_eq!(report["best_head_layers"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect::<Vec<_>>(), counts);
    // Accuracy: the top next token against the expected answer.
    let answered: Vec<&&Value> = ok.iter().filter(|l| l["example"]["answer"].is_string()).collect();
    let word = |t: &Value| t.as_str().unwrap().trim_start_matches('▁').trim().to_lowercase();
    let right = answered.iter().filter(|l| word(&l["top"][0]["text"]) == word(&l["example"]["answer"])).count();
    let acc = report["summary"]["accuracy"].as_f64().unwrap();
    assert!((acc - right as f64 / answered.len() as f64).abs() < 1e-12, "accuracy {acc}");
    // The pointing game: with a mask (the scenes' label maps), the top patch holds some of the
    // object; else the top patch's centre, through the crop box, is inside the object's box.
    let boxed: Vec<&&Value> = ok.iter().filter(|l| l["example"]["box"].is_array() || l["mask_coverage"].is_array()).collect();
    let hits = boxed
        .iter()
        .filter(|l| {
            let s: Vec<f64> = l["patch_scores"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            let top = (0..s.len()).fold(0, |b, i| if s[i] > s[b] { i } else { b });
            if let Some(cov) = l["mask_coverage"].as_array() {
                return cov[top].as_f64().unwrap() > 0.0;
            }
            let g = l["grid"].as_u64().unwrap() as usize;
            let c = &l["crop"];
            let (cx, cy, cw, ch) =
                (c["x"].as_f64().unwrap(), c["y"].as_f64().unwrap(), c["width"].as_f64().unwrap(), c["height"].as_f64().unwrap());
            let (x, y) = (cx + ((top % g) as f64 + 0.5) / g as f64 * cw, cy + ((top / g) as f64 + 0.5) / g as f64 * ch);
            let b: Vec<f64> = l["example"]["box"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            x >= b[0] && x < b[2] && y >= b[1] && y < b[3]
        })
        .count();
    let p = &report["summary"]["pointing"];
    assert_eq!(p["examples"].as_u64(), Some(boxed.len() as u64));
    let masked = ok.iter().filter(|l| l["mask_coverage"].is_array()).count();
    assert!(masked > 0 && p["with_mask"].as_u64() == Some(masked as u64), "{p}: {masked} lines with a mask");
    assert!((p["hit_rate"].as_f64().unwrap() - hits as f64 / boxed.len() as f64).abs() < 1e-4, "pointing {p} vs {hits}/{}", boxed.len());
    // The same examples run twice rank the heads the same.
    let c = &report["comparisons"][0]["result"];
    assert_eq!((c["matched_examples"].as_u64(), c["spearman"].as_f64()), (Some(ok.len() as u64), Some(1.0)), "{c}");
}
