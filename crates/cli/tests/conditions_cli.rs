//! The paper's three conditions from one examples file: Llava VQA (the image), Llava TQA (the
//! text context, same model) and Vicuna TQA (the text context, the plain decoder checkpoint),
//! then `report` comparing every pair over their common ids. Tiny models made by transformers
//! (tests/data/tiny-llava and tests/data/tiny-vicuna: the same decoder shape).

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{bin, repo, temp_dir};
use serde_json::Value;

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The top `k` heads of the mean of the lines' head scores (ties by position), as the report ranks.
fn top_heads(lines: &[Value], k: usize) -> BTreeSet<(usize, usize)> {
    let grids: Vec<Vec<Vec<f64>>> = lines
        .iter()
        .map(|l| {
            l["head_scores"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect())
                .collect()
        })
        .collect();
    let (layers, heads) = (grids[0].len(), grids[0][0].len());
    let mean = |l: usize, h: usize| grids.iter().map(|g| g[l][h]).sum::<f64>() / grids.len() as f64;
    let mut all: Vec<(usize, usize)> = (0..layers).flat_map(|l| (0..heads).map(move |h| (l, h))).collect();
    all.sort_by(|a, b| mean(b.0, b.1).total_cmp(&mean(a.0, a.1)).then(a.cmp(b)));
    all.into_iter().take(k).collect()
}

#[test]
fn three_conditions_from_one_file_and_their_pairwise_comparison() {
    let dir = temp_dir("conditions");
    std::fs::create_dir_all(&dir).unwrap();
    let images = ["scene-500x375", "tall-301x689", "wide-alpha-640x233", "small-97x61"];
    let contexts =
        ["The dog is brown.", "A black cat sits on a red sofa.", "The dog in the park is white.", "Two dogs, one brown and one grey."];
    let rows: String = images
        .iter()
        .zip(contexts)
        .enumerate()
        .map(|(i, (img, ctx))| {
            let image = repo(&format!("tests/data/images/{img}.png")).canonicalize().unwrap();
            serde_json::json!({"id": format!("ex{i}"), "image": image, "context": ctx,
                "question": "What is the color of the dog?", "answer_prefix": "The color of the dog is"})
            .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(dir.join("examples.jsonl"), rows).unwrap();
    let batch = |model: &str, inputs: &str, out: &str| {
        let st = bin()
            .current_dir(&dir)
            .args(["batch", "--examples", "examples.jsonl", "--inputs", inputs, "--out", out, "--model"])
            .arg(repo(&format!("tests/data/{model}")))
            .output()
            .unwrap();
        assert!(st.status.success(), "{model} {inputs}: {}", String::from_utf8_lossy(&st.stderr));
        String::from_utf8_lossy(&st.stderr).to_string()
    };
    batch("tiny-llava", "image", "vqa.jsonl");
    batch("tiny-llava", "context", "llava-tqa.jsonl");
    batch("tiny-vicuna", "context", "vicuna-tqa.jsonl");
    // The plain decoder has no vision tower: every image example is a recorded error, not a stop.
    let stderr = batch("tiny-vicuna", "image", "vicuna-vqa.jsonl");
    assert!(stderr.contains("recorded 4 errors"), "{stderr}");
    assert!(lines(&dir.join("vicuna-vqa.jsonl")).iter().all(|l| l["error"].as_str().unwrap().contains("no vision tower")));

    let (vqa, tqa, vicuna) = (lines(&dir.join("vqa.jsonl")), lines(&dir.join("llava-tqa.jsonl")), lines(&dir.join("vicuna-tqa.jsonl")));
    assert!(vqa.iter().all(|l| l["grid"] == 4 && l["example"].get("context").is_none()), "VQA sees the image only");
    assert!(tqa.iter().chain(&vicuna).all(|l| l["grid"] == 0 && l["example"].get("image").is_none()), "TQA sees the text only");

    let st = bin()
        .current_dir(&dir)
        .args(["report", "vicuna-tqa.jsonl", "llava-tqa.jsonl", "vqa.jsonl", "--out", "report", "--top-k", "3", "--bootstrap", "100"])
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("report/report.json")).unwrap()).unwrap();
    let pairs = report["comparisons"].as_array().unwrap();
    assert_eq!(pairs.len(), 3, "every pair of three runs");
    let runs = [&vicuna, &tqa, &vqa];
    let mut at = 0;
    for i in 0..3 {
        for j in i + 1..3 {
            let c = &pairs[at]["result"];
            let want = top_heads(runs[i], 3).intersection(&top_heads(runs[j], 3)).count();
            assert_eq!((c["matched_examples"].as_u64(), c["top_k_overlap"].as_u64()), (Some(4), Some(want as u64)), "pair {i} {j}: {c}");
            let ci = c["spearman_ci95"].as_array().unwrap();
            assert!(ci[0].as_f64().unwrap() <= ci[1].as_f64().unwrap(), "{c}");
            at += 1;
        }
    }
    let html = std::fs::read_to_string(dir.join("report/report.html")).unwrap();
    assert!(html.contains("vicuna-tqa.jsonl") && html.contains("llava-tqa.jsonl") && html.contains("vqa.jsonl"));
    let _ = std::fs::remove_dir_all(dir);
}

/// `--analyses` on the text condition: no image, so the shared prefix of the question as asked
/// and with another object is counted in text tokens (the context comes before the question).
#[test]
fn analyses_read_a_text_context_without_an_image() {
    let dir = temp_dir("conditions-analyses");
    std::fs::create_dir_all(&dir).unwrap();
    let rows = [
        ("The dog is brown.", "dog", "brown"),
        ("A black cat sits on a red sofa.", "cat", "black"),
        ("The bird on the roof is white.", "bird", "white"),
    ];
    let text: String = rows
        .iter()
        .enumerate()
        .map(|(i, (ctx, object, color))| {
            serde_json::json!({"id": format!("t{i}"), "context": ctx, "question": format!("What is the color of the {object}?"),
                "answer_prefix": format!("The color of the {object} is"), "object": object, "color": color})
            .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(dir.join("examples.jsonl"), text).unwrap();
    let st = bin()
        .current_dir(&dir)
        .args([
            "batch",
            "--examples",
            "examples.jsonl",
            "--inputs",
            "context",
            "--analyses",
            "--analysis-positions",
            "4",
            "--out",
            "out.jsonl",
        ])
        .arg("--model")
        .arg(repo("tests/data/tiny-llava"))
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let out = lines(&dir.join("out.jsonl"));
    assert_eq!(out.len(), rows.len());
    for (l, (_, object, color)) in out.iter().zip(rows) {
        let id = l["id"].as_str().unwrap();
        assert!(l.get("error").is_none() && l["grid"] == 0, "{id}: a text-only explanation: {l}");
        let w = &l["analyses"]["words"];
        assert_eq!((w["color"].as_str(), w["object"].as_str()), (Some(color), Some(object)), "{id}: {w}");
        assert!(w["random_color"] != w["color"] && w["random_object"] != w["object"], "{id}: {w}");
        let a = &l["analyses"]["attention"];
        assert!(a.get("error").is_none(), "{id}: {a}");
        let question = a["question"].as_str().unwrap();
        assert!(question.contains(w["random_object"].as_str().unwrap()) && !question.contains(object), "{id}: {question}");
        // Shared: the prompt ids both prompts start with (no image token: one position each),
        // read independently from `explain` on the edited question.
        let edited = bin()
            .current_dir(&dir)
            .args(["explain", "--context", l["example"]["context"].as_str().unwrap(), "--question", question])
            .args(["--answer-prefix", a["answer_prefix"].as_str().unwrap(), "--out", "edited.png", "--lens-k", "0", "--model"])
            .arg(repo("tests/data/tiny-llava"))
            .output()
            .unwrap();
        let edited = common::json_of(edited);
        let ids = |v: &Value| -> Vec<u64> { v["prompt_ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect() };
        let same_ids = ids(l).iter().zip(&ids(&edited)).take_while(|(a, b)| a == b).count();
        let shared = a["shared_positions"].as_u64().unwrap() as usize;
        assert_eq!(shared, same_ids, "{id}: shared positions");
        assert!(shared > 5 && shared < l["sequence_length"].as_u64().unwrap() as usize, "{id}: the context is shared, the question is not");
        let positions: Vec<usize> = a["positions"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap() as usize).collect();
        assert!(positions.iter().all(|&p| p < shared), "{id}: {positions:?} past {shared}");
        let attention: Vec<f64> = l["position_attention"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        let same: f64 = positions.iter().map(|&p| attention[p]).sum();
        assert!((a["same"].as_f64().unwrap() - same).abs() < 1e-5, "{id}: same {} vs {same}", a["same"]);
        assert!((0.0..=1.0 + 1e-5).contains(&a["different"].as_f64().unwrap()), "{id}: {a}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
