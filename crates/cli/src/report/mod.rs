//! `llava-lens report`: tables and figures over one or two batch outputs (docs/BATCH.md,
//! "Reports"): the mean head-importance grid and how often each head is in an example's top k,
//! the layers of the best heads, where the best head's position importance lies, accuracy, the
//! pointing game against mean attention and a random patch, per tag; with more runs, how each
//! pair's head rankings agree, with bootstrap intervals. Every figure is also a table (CSV), all
//! numbers are in report.json, and report.html holds it all in one self-contained file.

mod analyses;
mod figures;
pub mod stats;
mod zoom;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use stats::Row;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Batch outputs (JSONL): the first is summarised; with more, every pair is compared over
    /// their common ids (conditions such as the paper's Vicuna TQA, Llava TQA and Llava VQA, two
    /// models, two dtypes).
    #[arg(required = true, num_args = 1..)]
    pub runs: Vec<PathBuf>,
    /// Output folder (created): report.html, report.json, *.svg, *.csv.
    #[arg(long)]
    pub out: PathBuf,
    /// How many best heads count as an example's top heads.
    #[arg(long, default_value_t = 10)]
    pub top_k: usize,
    /// Bootstrap resamples of the examples for the comparison's intervals.
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// The numbers of one group of rows (the whole run, or one tag), with that group's
/// `analyses::summarise` (passed in: the whole run's also draws the figures, summarised once).
fn summary(rows: &[&Row], k: usize, analysed: Option<analyses::Analyses>) -> Value {
    let (answered, accuracy) = stats::accuracy(rows);
    json!({
        "examples": rows.len(),
        "answered": answered,
        "accuracy": accuracy,
        "position_shares": stats::mean_shares(rows),
        "pointing": stats::pointing(rows),
        "mean_best_head_score": (!rows.is_empty()).then(|| rows.iter().map(|r| r.head_scores[r.best_layer].iter().copied().fold(f32::MIN, f32::max) as f64).sum::<f64>() / rows.len() as f64),
        "top_k": k,
        "analyses": analysed,
        "zoom": zoom::summarise(rows),
    })
}

fn grid_csv(grid: &[Vec<f32>]) -> String {
    let mut s = String::from("layer,head,value\n");
    for (l, row) in grid.iter().enumerate() {
        for (h, v) in row.iter().enumerate() {
            let _ = writeln!(s, "{l},{h},{v}");
        }
    }
    s
}

pub fn run(a: &ReportArgs) -> anyhow::Result<()> {
    let read = |p: &Path| -> anyhow::Result<(Vec<Row>, usize)> {
        let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        stats::rows(&text, &p.display().to_string())
    };
    let (rows, errors) = read(&a.runs[0])?;
    let name = a.runs[0].display().to_string();
    let Some(first) = rows.first() else { bail!("{name}: no explained example (only {errors} error lines)") };
    let shape = (first.head_scores.len(), first.head_scores.first().map_or(0, Vec::len));
    if let Some(r) = rows.iter().find(|r| (r.head_scores.len(), r.head_scores.first().map_or(0, Vec::len)) != shape) {
        bail!(
            "{name}: example {:?} has another head grid than {:?} ({} x {}); one report is over one model",
            r.id,
            first.id,
            shape.0,
            shape.1
        );
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let all: Vec<&Row> = rows.iter().collect();
    let mean = stats::mean_grid(&all);
    let freq = stats::top_k_frequency(&all, a.top_k);
    let layers = stats::best_head_layers(&all, shape.0);
    let tags: BTreeSet<&str> = rows.iter().flat_map(|r| r.tags.iter().map(String::as_str)).collect();
    let by_tag: serde_json::Map<String, Value> = tags
        .iter()
        .map(|&t| {
            let tagged: Vec<&Row> = rows.iter().filter(|r| r.tags.iter().any(|x| x == t)).collect();
            (t.to_string(), summary(&tagged, a.top_k, analyses::summarise(&tagged)))
        })
        .collect();
    let analysed = analyses::summarise(&all);
    // The first run is compared as read above, the others are read here.
    let mut others = Vec::new();
    for p in &a.runs[1..] {
        others.push(read(p)?.0);
    }
    let runs: Vec<&[Row]> = std::iter::once(rows.as_slice()).chain(others.iter().map(Vec::as_slice)).collect();
    let mut comparisons = Vec::new();
    for i in 0..runs.len() {
        for j in i + 1..runs.len() {
            let c = stats::compare(runs[i], runs[j], a.top_k, a.bootstrap, a.seed).with_context(|| {
                format!("{} and {}: no example id in both with the same head grid", a.runs[i].display(), a.runs[j].display())
            })?;
            comparisons.push(json!({"a": a.runs[i], "b": a.runs[j], "result": c}));
        }
    }
    let report = json!({
        "runs": a.runs,
        "error_lines": errors,
        "layers": shape.0,
        "heads": shape.1,
        "summary": summary(&all, a.top_k, analysed),
        "by_tag": by_tag,
        "mean_head_scores": mean,
        "top_k_frequency": freq,
        "best_head_layers": layers,
        "top_heads_of_the_mean": stats::ranked(&mean).into_iter().take(a.top_k).map(|(l, h)| json!({"layer": l, "head": h, "score": mean[l][h]})).collect::<Vec<_>>(),
        "comparisons": comparisons,
    });
    let write = |file: &str, text: &str| -> anyhow::Result<()> {
        let p = a.out.join(file);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
    };
    let svg_mean = figures::heat_map(&mean, "Mean head importance", "nats")?;
    let svg_freq = figures::heat_map(&freq, &format!("Share of examples with the head in their top {}", a.top_k), "share")?;
    let svg_layers = figures::layer_bars(&layers, "Layer of each example's best head", "examples")?;
    write("report.json", &serde_json::to_string_pretty(&report)?)?;
    write("mean_head_scores.csv", &grid_csv(&mean))?;
    write("top_k_frequency.csv", &grid_csv(&freq))?;
    write(
        "best_head_layers.csv",
        &layers.iter().enumerate().fold(String::from("layer,examples\n"), |s, (l, n)| s + &format!("{l},{n}\n")),
    )?;
    write("mean_head_scores.svg", &svg_mean)?;
    write("top_k_frequency.svg", &svg_freq)?;
    write("best_head_layers.svg", &svg_layers)?;
    let mut svgs = vec![svg_mean, svg_freq, svg_layers];
    if let Some(an) = analysed {
        write("analyses.csv", &analyses::csv(&an))?;
        let mut groups = Vec::new();
        for (name, m) in [("colour in value outputs", an.value_storage), ("object in layer inputs", an.input_storage)] {
            groups.extend(m.map(|m| (name.to_string(), m.correct, m.random)));
        }
        if !groups.is_empty() {
            let svg = figures::paired_bars(&groups, ("correct word", "random word"), "Information storage: mean reciprocal rank")?;
            write("storage_mrr.svg", &svg)?;
            svgs.push(svg);
        }
        if let Some(t) = an.attention {
            let groups = [("top positions of the best head".to_string(), t.same, t.different)];
            let svg = figures::paired_bars(&groups, ("question names the object", "names another object"), "Attention drawn")?;
            write("attention_same_vs_different.svg", &svg)?;
            svgs.push(svg);
        }
    }
    if let Some(z) = zoom::summarise(&all) {
        write("zoom.csv", &zoom::csv(&z))?;
    }
    write("report.html", &html(&report, &svgs.iter().map(String::as_str).collect::<Vec<_>>()))?;
    eprintln!("report of {} examples ({errors} error lines) written to {}", rows.len(), a.out.join("report.html").display());
    Ok(())
}

/// One self-contained page: the summary table, the figures inline, the per-tag table.
fn html(report: &Value, svgs: &[&str]) -> String {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let num = |v: &Value| match v.as_f64() {
        Some(f) if v.is_f64() => format!("{f:.3}"),
        _ if v.is_null() => "–".into(),
        _ => esc(&v.to_string()),
    };
    let row = |name: &str, s: &Value| {
        let p = &s["pointing"];
        let sh = &s["position_shares"];
        let z = &s["zoom"];
        format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            num(&s["examples"]),
            num(&s["accuracy"]),
            num(&z["accuracy_map_window"]),
            num(&z["accuracy_random_window"]),
            num(&z["accuracy_map_minus_random"]),
            num(&p["hit_rate"]),
            num(&p["hit_rate_mean_attention"]),
            num(&p["hit_rate_random"]),
            num(&p["mass_in_box"]),
            num(&sh["image"]),
            num(&sh["after_image"]),
            num(&sh["before_image"])
        )
    };
    let mut rows = row("all", &report["summary"]);
    if let Some(tags) = report["by_tag"].as_object() {
        for (t, s) in tags {
            rows += &row(&format!("tag: {t}"), s);
        }
    }
    let comparison: String = report["comparisons"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|pair| {
            let c = &pair["result"];
            format!(
                "<h2>{} and {}</h2><p>{} examples in both. Spearman rank correlation of the mean head grids: {} (95 % bootstrap interval {}); top-{} heads in common: {} ({}), over {} resamples.</p>",
                esc(&pair["a"].to_string()),
                esc(&pair["b"].to_string()),
                num(&c["matched_examples"]),
                num(&c["spearman"]),
                esc(&c["spearman_ci95"].to_string()),
                num(&c["top_k"]),
                num(&c["top_k_overlap"]),
                esc(&c["top_k_overlap_ci95"].to_string()),
                num(&c["bootstrap_samples"])
            )
        })
        .collect();
    let an = &report["summary"]["analyses"];
    let mrr = |m: &Value, what: &str| {
        if m.is_null() {
            return String::new();
        }
        format!(
            "<li>{what}: mean reciprocal rank {} for the correct word, {} for a random one; the correct one ranks higher in {} of {} readings.</li>",
            num(&m["correct"]),
            num(&m["random"]),
            num(&m["correct_above_random"]),
            num(&m["readings"])
        )
    };
    let z = &report["summary"]["zoom"];
    let zoomed = if z.is_null() {
        String::new()
    } else {
        format!(
            "<h2>Zoom and ask again ({} examples, {} with an answer)</h2><p>Cropped to the map's window, the answer is right in {} of the examples \
             (on the whole picture {}); cropped to a random window of the same size, in {}. Mean p(target): whole {}, map's window {}, random {}.</p>",
            num(&z["examples"]),
            num(&z["answered"]),
            num(&z["accuracy_map_window"]),
            num(&z["accuracy_whole"]),
            num(&z["accuracy_random_window"]),
            num(&z["mean_p_whole"]),
            num(&z["mean_p_map_window"]),
            num(&z["mean_p_random_window"])
        )
    };
    let analyses = if an.is_null() {
        String::new()
    } else {
        let t = &an["attention"];
        let attention = if t.is_null() {
            String::new()
        } else {
            format!(
                "<li>Attention of the best head's top positions: {} when the question names the object, {} when it names another ({} of {} examples draw more with the same object).</li>",
                num(&t["same"]),
                num(&t["different"]),
                num(&t["same_above_different"]),
                num(&t["examples"])
            )
        };
        format!(
            "<h2>The paper's analyses ({} examples)</h2><ul>{}{}{attention}</ul>",
            num(&an["examples"]),
            mrr(&an["value_storage"], "The colour in the value outputs of the best heads' top positions"),
            mrr(&an["input_storage"], "The object in their layer inputs")
        )
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>llava-lens report</title>\
         <style>body{{font:15px/1.4 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.2rem .5rem;text-align:right}}\
         td:first-child{{text-align:left}}svg{{max-width:100%;height:auto}}</style></head><body>\
         <h1>llava-lens report</h1><p>{} ({} error lines not counted). Method: Yu &amp; Ananiadou (2024); numbers in report.json and the CSV files beside this page.</p>\
         <table><tr><th></th><th>examples</th><th>accuracy</th><th>zoomed on the map</th><th>on a random window</th><th>map &minus; random</th><th>pointing: map</th><th>mean attention</th><th>random patch</th>\
         <th>map mass in box</th><th>importance on image</th><th>after image</th><th>before image</th></tr>{rows}</table>{zoomed}{analyses}{comparison}{}</body></html>\n",
        esc(&report["runs"][0].to_string()),
        num(&report["error_lines"]),
        svgs.iter().map(|s| format!("<figure>{s}</figure>")).collect::<String>()
    )
}
