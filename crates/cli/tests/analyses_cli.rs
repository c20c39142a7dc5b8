//! `batch --analyses` and its report on the demo model over generated scenes (colour and shape
//! words): each line's readings checked for what they must be (the random words, the top
//! positions, the attention sums), then the report's aggregates recomputed here from the lines.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{bin, temp_dir};
use serde_json::Value;

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn word(piece: &Value) -> String {
    piece.as_str().unwrap().trim_start_matches(['▁', 'Ġ']).trim().to_lowercase()
}

#[test]
fn analyses_per_example_and_their_report_agree_with_the_lines() {
    let dir = temp_dir("analyses");
    let st = bin().args(["scenes", "--n", "5", "--seed", "777", "--out"]).arg(&dir).output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let all = std::fs::read_to_string(dir.join("examples.jsonl")).unwrap();
    let examples: Vec<Value> = all.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let colors: BTreeSet<String> = examples.iter().filter_map(|e| e["color"].as_str()).map(str::to_lowercase).collect();
    let objects: BTreeSet<String> = examples.iter().filter_map(|e| e["object"].as_str()).map(str::to_lowercase).collect();
    assert!(colors.len() > 1 && objects.len() > 1, "the scenes use several colours and shapes: {colors:?} {objects:?}");
    // Every question of the first scenes: present objects (colour and shape) and absent ones
    // (shape only), at most 10 to keep the test short on a CPU.
    let kept: Vec<&str> = all.lines().take(10).collect();
    std::fs::write(dir.join("subset.jsonl"), kept.join("\n") + "\n").unwrap();
    // The random words come from the whole file: the subset draws from its own words, so the
    // run reads the subset and its word sets are the subset's.
    let sub: Vec<Value> = kept.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let colors: BTreeSet<String> = sub.iter().filter_map(|e| e["color"].as_str()).map(str::to_lowercase).collect();
    let objects: BTreeSet<String> = sub.iter().filter_map(|e| e["object"].as_str()).map(str::to_lowercase).collect();

    let st = bin()
        .current_dir(&dir)
        .args(["batch", "--examples", "subset.jsonl", "--out", "out.jsonl", "--analyses", "--analysis-positions", "12", "--lens-k", "0"])
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let out = lines(&dir.join("out.jsonl"));
    assert_eq!(out.len(), kept.len());
    let mut with_attention = 0;
    for l in &out {
        let id = l["id"].as_str().unwrap();
        assert!(l.get("error").is_none(), "{id}: {l}");
        let e = &l["example"];
        let w = &l["analyses"]["words"];
        let s = &l["storage"];
        // The correct words are the example's; the random ones are other words of the file.
        if let Some(c) = e["color"].as_str() {
            let (cw, rw) = (w["color"].as_str().unwrap(), w["random_color"].as_str().unwrap());
            assert!(cw == c.to_lowercase() && rw != cw && colors.contains(rw), "{id}: colours {w}");
            let texts: Vec<String> = s["value_token_text"].as_array().unwrap().iter().map(word).collect();
            assert_eq!(texts, vec![cw.to_string(), rw.to_string()], "{id}: the value tokens are the colour words");
        } else {
            assert!(s["value_tokens"].as_array().unwrap().is_empty(), "{id}: no colour, no value tokens");
        }
        let (ow, ro) = (w["object"].as_str().unwrap(), w["random_object"].as_str().unwrap());
        assert!(ow == e["object"].as_str().unwrap().to_lowercase() && ro != ow && objects.contains(ro), "{id}: objects {w}");
        // The storage head is the best head; its positions the top 12 by the line's own scores.
        let h = &s["heads"][0];
        assert_eq!(h["head"], l["best_head"], "{id}");
        let scores = floats(&l["position_scores"]);
        let positions: Vec<usize> = h["positions"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap() as usize).collect();
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        assert_eq!(positions, order[..12], "{id}: the top positions by position score");
        for r in h["value_ranks"].as_array().unwrap().iter().chain(h["input_ranks"].as_array().unwrap()) {
            let ok = |x: &Value| (1..u32::MAX as u64).contains(&x.as_u64().unwrap());
            assert!(r.as_array().unwrap().iter().all(ok), "{id}: ranks are from 1 and in the vocabulary: {r}");
        }
        // The attention with the question as asked is the line's own best-head attention summed
        // over the kept positions; those lie before the question (they mean the same in both).
        let a = &l["analyses"]["attention"];
        assert!(a.get("error").is_none(), "{id}: {a}");
        let question = a["question"].as_str().unwrap();
        assert!(question.contains(ro) && !question.contains(&format!(" {ow}?")), "{id}: the edited question {question:?}");
        let kept_positions: Vec<usize> = a["positions"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap() as usize).collect();
        let shared = a["shared_positions"].as_u64().unwrap() as usize;
        let want: Vec<usize> = positions.iter().copied().filter(|&p| p < shared).collect();
        assert_eq!(kept_positions, want, "{id}: the top positions both prompts share");
        if with_attention == 0 {
            // The shared prefix, independently: `explain` on the edited question, and the first
            // prompt id where the two differ, counted in sequence positions (the image token
            // stands for image_tokens of them).
            let edited = bin()
                .current_dir(&dir)
                .args(["explain", "--image", e["image"].as_str().unwrap(), "--question", question])
                .args(["--answer-prefix", a["answer_prefix"].as_str().unwrap(), "--out", "edited.png", "--lens-k", "0"])
                .output()
                .unwrap();
            let edited = common::json_of(edited);
            let ids = |v: &Value| -> Vec<u64> { v["prompt_ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect() };
            let (x, y) = (ids(l), ids(&edited));
            let same_ids = x.iter().zip(&y).take_while(|(a, b)| a == b).count();
            let off = l["image_offset"].as_u64().unwrap() as usize;
            let n_img = l["image_tokens"].as_u64().unwrap() as usize;
            assert!(same_ids > off, "{id}: the prompts differ after the image");
            assert_eq!(shared, same_ids + n_img - 1, "{id}: shared positions");
        }
        let attention = floats(&l["position_attention"]);
        let same: f64 = kept_positions.iter().map(|&p| attention[p]).sum();
        assert!((a["same"].as_f64().unwrap() - same).abs() < 1e-5, "{id}: same {} vs {same}", a["same"]);
        let different = a["different"].as_f64().unwrap();
        assert!((0.0..=1.0 + 1e-5).contains(&different), "{id}: attention mass {different}");
        with_attention += 1;
    }
    assert_eq!(with_attention, out.len());

    // The report's analyses, recomputed here: reciprocal ranks pooled over every (example,
    // position) reading, token 0 the correct word and 1 the random one.
    let st = bin().current_dir(&dir).args(["report", "out.jsonl", "--out", "report", "--bootstrap", "10"]).output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("report/report.json")).unwrap()).unwrap();
    let an = &report["summary"]["analyses"];
    assert_eq!(an["examples"].as_u64(), Some(out.len() as u64));
    for (key, field) in [("value_storage", "value_ranks"), ("input_storage", "input_ranks")] {
        let pairs: Vec<(f64, f64)> = out
            .iter()
            .flat_map(|l| l["storage"]["heads"][0][field].as_array().unwrap().clone())
            .filter_map(|r| {
                let r = r.as_array()?;
                Some((r.first()?.as_f64()?, r.get(1)?.as_f64()?))
            })
            .collect();
        let n = pairs.len() as f64;
        let m = &an[key];
        assert_eq!(m["readings"].as_u64(), Some(pairs.len() as u64), "{key}");
        for (name, want) in [
            ("correct", pairs.iter().map(|p| 1.0 / p.0).sum::<f64>() / n),
            ("random", pairs.iter().map(|p| 1.0 / p.1).sum::<f64>() / n),
            ("correct_above_random", pairs.iter().filter(|p| p.0 < p.1).count() as f64 / n),
        ] {
            let got = m[name].as_f64().unwrap();
            assert!((got - want).abs() < 1e-9, "{key} {name}: report {got}, lines {want}");
        }
        eprintln!("{key}: MRR correct {:.4}, random {:.4} over {} readings", m["correct"], m["random"], n);
    }
    let t = &an["attention"];
    let shifts: Vec<(f64, f64)> = out
        .iter()
        .map(|l| (l["analyses"]["attention"]["same"].as_f64().unwrap(), l["analyses"]["attention"]["different"].as_f64().unwrap()))
        .collect();
    let n = shifts.len() as f64;
    for (name, want) in [
        ("same", shifts.iter().map(|s| s.0).sum::<f64>() / n),
        ("different", shifts.iter().map(|s| s.1).sum::<f64>() / n),
        ("same_above_different", shifts.iter().filter(|s| s.0 > s.1).count() as f64 / n),
    ] {
        let got = t[name].as_f64().unwrap();
        assert!((got - want).abs() < 1e-6, "attention {name}: report {got}, lines {want}");
    }
    eprintln!("attention: same {:.4}, different {:.4}", t["same"], t["different"]);
    for f in ["analyses.csv", "storage_mrr.svg", "attention_same_vs_different.svg"] {
        assert!(dir.join("report").join(f).exists(), "{f}");
    }
    let html = std::fs::read_to_string(dir.join("report/report.html")).unwrap();
    assert!(html.contains("The paper's analyses") && html.matches("<svg").count() >= 5, "the HTML shows the analyses");
    let _ = std::fs::remove_dir_all(dir);
}

/// `eval pointing` and `batch` + `report` on the same scenes (the scenes command writes what
/// eval generates in memory: same seed, same size; PNG is lossless), explaining the same token
/// (the correct colour): the same hit rates for the paper's map, mean attention and a random
/// patch, now that report scores against the scenes' exact masks.
#[test]
fn eval_pointing_equals_batch_and_report_on_the_same_scenes() {
    let dir = temp_dir("pointing-parity");
    let (n, seed) = ("3", "424242");
    let eval = common::json_of(bin().args(["eval", "pointing", "--n", n, "--seed", seed, "--lens-k", "0"]).output().unwrap());
    let st = bin().args(["scenes", "--n", n, "--seed", seed, "--out"]).arg(&dir).output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    // Present objects only (eval asks about those), each explaining its correct colour.
    let rows: String = std::fs::read_to_string(dir.join("examples.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["color"].is_string())
        .map(|mut e| {
            e["target"] = e["answer"].clone();
            e.to_string() + "\n"
        })
        .collect();
    std::fs::write(dir.join("present.jsonl"), &rows).unwrap();
    let st =
        bin().current_dir(&dir).args(["batch", "--examples", "present.jsonl", "--out", "out.jsonl", "--lens-k", "0"]).output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let st = bin().current_dir(&dir).args(["report", "out.jsonl", "--out", "report", "--bootstrap", "10"]).output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("report/report.json")).unwrap()).unwrap();
    let p = &report["summary"]["pointing"];
    let questions = eval["n_questions"].as_u64().unwrap();
    assert_eq!((p["examples"].as_u64(), p["with_mask"].as_u64()), (Some(questions), Some(questions)), "{p}");
    for (report_key, eval_map) in [("hit_rate", "paper"), ("hit_rate_mean_attention", "mean_attention"), ("hit_rate_random", "random")] {
        let (got, want) = (p[report_key].as_f64().unwrap(), eval["maps"][eval_map]["hit_rate"].as_f64().unwrap());
        assert!((got - want).abs() < 1e-9, "{report_key}: batch + report {got}, eval pointing {want}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
