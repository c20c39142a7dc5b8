//! A batch's examples (docs/BATCH.md): rows of a JSONL or CSV file, their columns mapped to the
//! fields `explain` needs, and the deterministic share of them a `--shard I/N` job takes.
//!
//! A row that cannot become an example (no question, a box that is not four numbers, a line
//! that is not JSON) is still a row: it keeps its id and carries the problem, which the batch
//! records in that example's output line; only a file that cannot be read at all, or two rows
//! with one id (resuming would then be ambiguous), stops the run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::Value;

/// The fields an example has; `--column FIELD=NAME` reads FIELD from another column name.
pub const FIELDS: [&str; 14] = [
    "id",
    "image",
    "context",
    "question",
    "answer_prefix",
    "answer",
    "target",
    "contrast",
    "tags",
    "box",
    "mask",
    "mask_value",
    "color",
    "object",
];

/// One example: what `explain` needs, and what reports read (the expected answer, tags, the
/// object's box, the colour and object words of the paper's analyses).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Example {
    /// The image path as the file wrote it (resolved against the file's folder to read it);
    /// None for a text-only example.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Text the question is about, put before it (beside the image, or instead of it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    pub question: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub answer_prefix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contrast: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// `[x0, y0, x1, y1]` in the original image's pixels.
    #[serde(rename = "box", skip_serializing_if = "Option::is_none")]
    pub bbox: Option<[f32; 4]>,
    /// An image of the original's size marking the object (relative to the file's folder, as
    /// `image`): pixels equal to `mask_value`, or any non-zero pixel without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask_value: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
}

/// A row of the file: its id (given, or `row-N` counting data rows from 1), and the example or
/// what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: String,
    /// 1-based line of the file (CSV: counting the header), for messages.
    pub line: usize,
    pub example: Result<Example, String>,
}

/// `--column FIELD=NAME` pairs, checked: FIELD must be one of [`FIELDS`].
#[derive(Debug, Clone, Default)]
pub struct Columns(BTreeMap<String, String>);

impl Columns {
    pub fn parse(pairs: &[String]) -> anyhow::Result<Self> {
        let mut map = BTreeMap::new();
        for p in pairs {
            let (field, name) =
                p.split_once('=').with_context(|| format!("--column {p:?}: expected FIELD=COLUMN, e.g. question=q_text"))?;
            let field = field.trim();
            if !FIELDS.contains(&field) {
                bail!("--column {p:?}: {field:?} is not a field; fields: {}", FIELDS.join(", "));
            }
            map.insert(field.to_string(), name.trim().to_string());
        }
        Ok(Columns(map))
    }

    fn name<'a>(&'a self, field: &'a str) -> &'a str {
        self.0.get(field).map_or(field, String::as_str)
    }
}

/// The examples of `path`: JSONL (one object per line, blank lines skipped) unless the name ends
/// in .csv (a header row, then one example per record; `tags` split on commas).
pub fn read(path: &Path, columns: &Columns) -> anyhow::Result<Vec<Row>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the examples in {}", path.display()))?;
    let csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let rows = if csv { read_csv(&text, columns).with_context(|| path.display().to_string())? } else { read_jsonl(&text, columns) };
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &rows {
        if let Some(first) = seen.insert(&r.id, r.line) {
            bail!(
                "{}: lines {first} and {} have the same id {:?}; ids must be unique so a rerun knows what is done",
                path.display(),
                r.line,
                r.id
            );
        }
    }
    Ok(rows)
}

fn read_jsonl(text: &str, columns: &Columns) -> Vec<Row> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let n = rows.len() + 1;
        let row = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(obj)) => {
                let get = |field: &str| obj.get(columns.name(field)).filter(|v| !v.is_null()).cloned();
                row_from(i + 1, n, &get)
            }
            Ok(other) => {
                Row { id: format!("row-{n}"), line: i + 1, example: Err(format!("line {}: expected a JSON object, found {other}", i + 1)) }
            }
            Err(e) => Row { id: format!("row-{n}"), line: i + 1, example: Err(format!("line {}: not JSON: {e}", i + 1)) },
        };
        rows.push(row);
    }
    rows
}

fn read_csv(text: &str, columns: &Columns) -> anyhow::Result<Vec<Row>> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let headers = reader.headers().context("the header row")?.clone();
    let mut rows = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let n = n + 1;
        let line = n + 1;
        let row = match record {
            Ok(rec) => {
                let get = |field: &str| {
                    let at = headers.iter().position(|h| h.trim() == columns.name(field))?;
                    rec.get(at).map(str::trim).filter(|v| !v.is_empty()).map(|v| Value::String(v.to_string()))
                };
                row_from(line, n, &get)
            }
            Err(e) => Row { id: format!("row-{n}"), line, example: Err(format!("line {line}: {e}")) },
        };
        rows.push(row);
    }
    Ok(rows)
}

/// A row from its fields (`get` answers a field's value, None when absent or empty).
fn row_from(line: usize, n: usize, get: &dyn Fn(&str) -> Option<Value>) -> Row {
    let id = match get("id") {
        Some(Value::String(s)) => s,
        Some(v @ Value::Number(_)) => v.to_string(),
        _ => format!("row-{n}"),
    };
    Row { id, line, example: example_from(get).map_err(|e| format!("line {line}: {e}")) }
}

fn example_from(get: &dyn Fn(&str) -> Option<Value>) -> Result<Example, String> {
    let text = |field: &str| -> Result<Option<String>, String> {
        match get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
            Some(v) => Err(format!("{field} is {v}; expected text")),
        }
    };
    let required = |field: &str| text(field)?.filter(|s| !s.trim().is_empty()).ok_or_else(|| format!("{field} is missing or empty"));
    let tags = match get("tags") {
        None => Vec::new(),
        Some(Value::String(s)) => s.split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| t.as_str().map(String::from).ok_or_else(|| format!("tags holds {t}; expected text")))
            .collect::<Result<_, _>>()?,
        Some(v) => return Err(format!("tags is {v}; expected a list of text or comma-separated text")),
    };
    let bbox = match get("box") {
        None => None,
        Some(v) => Some(parse_box(&v).ok_or_else(|| format!("box is {v}; expected [x0, y0, x1, y1] with x0 < x1 and y0 < y1"))?),
    };
    let mask_value = match text("mask_value")? {
        None => None,
        Some(v) => Some(v.trim().parse::<u32>().map_err(|_| format!("mask_value is {v:?}; expected a pixel value (a whole number)"))?),
    };
    let (image, context) = (text("image")?.filter(|s| !s.trim().is_empty()), text("context")?.filter(|s| !s.trim().is_empty()));
    if image.is_none() && context.is_none() {
        return Err("neither image nor context is given; an example needs one (or both)".into());
    }
    Ok(Example {
        image,
        context,
        question: required("question")?,
        answer_prefix: text("answer_prefix")?.unwrap_or_default(),
        answer: text("answer")?,
        target: text("target")?,
        contrast: text("contrast")?,
        tags,
        bbox,
        mask: text("mask")?.filter(|s| !s.trim().is_empty()),
        mask_value,
        color: text("color")?,
        object: text("object")?,
    })
}

/// `[x0, y0, x1, y1]` as a JSON list of numbers or (CSV) text "x0 y0 x1 y1" / "x0,y0,x1,y1".
fn parse_box(v: &Value) -> Option<[f32; 4]> {
    let nums: Vec<f64> = match v {
        Value::Array(a) => a.iter().map(Value::as_f64).collect::<Option<_>>()?,
        Value::String(s) => {
            s.trim_matches(['[', ']']).split([',', ' ']).filter(|p| !p.is_empty()).map(|p| p.trim().parse().ok()).collect::<Option<_>>()?
        }
        _ => return None,
    };
    let b: [f64; 4] = nums.try_into().ok()?;
    (b.iter().all(|x| x.is_finite()) && b[0] < b[2] && b[1] < b[3]).then(|| b.map(|x| x as f32))
}

impl Example {
    /// The image's path: as written when absolute, else against the examples file's folder.
    pub fn image_path(&self, examples_file: &Path) -> Option<PathBuf> {
        Some(beside(examples_file, self.image.as_deref()?))
    }

    /// The mask's path, resolved as the image's.
    pub fn mask_path(&self, examples_file: &Path) -> Option<PathBuf> {
        Some(beside(examples_file, self.mask.as_deref()?))
    }
}

fn beside(examples_file: &Path, name: &str) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() { p.to_path_buf() } else { examples_file.parent().unwrap_or(Path::new(".")).join(p) }
}

/// `--shard I/N`: the I-th of N disjoint shares of the ids (1-based), chosen by a hash of the id,
/// so every job of an array computes the same split without coordinating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not I/N with 1 <= I <= N (e.g. 3/8)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (u64, u64) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    pub fn takes(&self, id: &str) -> bool {
        fnv1a(id.as_bytes()) % self.count == self.index - 1
    }
}

/// FNV-1a (64-bit): a hash of an id that is the same on every machine, run and version (shards,
/// file names and the analyses' random words depend on it).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jsonl(text: &str) -> Vec<Row> {
        read_jsonl(text, &Columns::default())
    }

    #[test]
    fn jsonl_rows_keep_their_ids_and_carry_their_problems() {
        let rows = jsonl(concat!(
            r#"{"id": "a", "image": "x.png", "question": "What colour?", "tags": ["colour", "easy"], "box": [1, 2, 30, 40]}"#,
            "\n\n",
            r#"{"image": "y.png", "question": "  "}"#,
            "\n",
            "{not json\n",
            r#"{"id": 7, "image": "z.png", "question": "Which?", "box": [5, 5, 1, 9], "answer_prefix": "It is"}"#,
            "\n[1, 2]\n",
        ));
        assert_eq!(rows.len(), 5);
        let a = rows[0].example.as_ref().unwrap();
        assert_eq!(
            (rows[0].id.as_str(), a.tags.clone(), a.bbox),
            ("a", vec!["colour".to_string(), "easy".into()], Some([1.0, 2.0, 30.0, 40.0]))
        );
        // No id: the data row's number (blank lines are not rows); the line is the file's.
        assert_eq!((rows[1].id.as_str(), rows[1].line), ("row-2", 3));
        assert_eq!(rows[1].example, Err("line 3: question is missing or empty".into()));
        let text_only = jsonl(r#"{"context": "The dog is brown.", "question": "What colour is the dog?"}"#);
        assert_eq!(text_only[0].example.as_ref().unwrap().context.as_deref(), Some("The dog is brown."));
        let neither = jsonl(r#"{"question": "What colour is the dog?"}"#);
        assert!(neither[0].example.as_ref().unwrap_err().contains("neither image nor context"), "{neither:?}");
        assert!(rows[2].example.as_ref().unwrap_err().starts_with("line 4: not JSON"), "{:?}", rows[2]);
        assert_eq!(rows[3].id, "7");
        assert!(rows[3].example.as_ref().unwrap_err().contains("box is [5,5,1,9]; expected [x0, y0, x1, y1]"), "{:?}", rows[3]);
        assert!(rows[4].example.as_ref().unwrap_err().contains("expected a JSON object"));
    }

    #[test]
    fn masks_take_a_path_and_a_whole_pixel_value() {
        let rows = jsonl(concat!(
            r#"{"id": "m", "image": "a.png", "question": "Q?", "mask": "a.mask.png", "mask_value": 3}"#,
            "\n",
            r#"{"id": "t", "image": "a.png", "question": "Q?", "mask": "a.mask.png", "mask_value": "2"}"#,
            "\n",
            r#"{"id": "x", "image": "a.png", "question": "Q?", "mask": "a.mask.png", "mask_value": "red"}"#,
            "\n",
            r#"{"id": "n", "image": "a.png", "question": "Q?", "mask": "a.mask.png", "mask_value": -1}"#,
        ));
        let e = rows[0].example.as_ref().unwrap();
        assert_eq!((e.mask.as_deref(), e.mask_value), (Some("a.mask.png"), Some(3)));
        assert_eq!(rows[1].example.as_ref().unwrap().mask_value, Some(2));
        for r in &rows[2..] {
            assert!(r.example.as_ref().unwrap_err().contains("mask_value is"), "{r:?}");
        }
        assert_eq!(e.mask_path(Path::new("/data/ex.jsonl")), Some(PathBuf::from("/data/a.mask.png")));
    }

    #[test]
    fn csv_columns_map_to_fields() {
        let cols = Columns::parse(&["question=q".into(), "image=file".into()]).unwrap();
        let rows = read_csv("id,file,q,tags,box\nk1,a.png,Is it red?,\"colour, hard\",1 2 3 4\nk2,b.png,,,\n", &cols).unwrap();
        let e = rows[0].example.as_ref().unwrap();
        assert_eq!(
            (e.image.as_deref(), e.question.as_str(), e.tags.len(), e.bbox),
            (Some("a.png"), "Is it red?", 2, Some([1.0, 2.0, 3.0, 4.0]))
        );
        assert_eq!((rows[1].id.as_str(), rows[1].example.clone()), ("k2", Err("line 3: question is missing or empty".into())));
        let e = Columns::parse(&["questoin=q".into()]).unwrap_err().to_string();
        assert!(e.contains("\"questoin\" is not a field") && e.contains("answer_prefix"), "{e}");
    }

    #[test]
    fn duplicate_ids_stop_the_run_naming_both_lines() {
        let dir = std::env::temp_dir().join(format!("llava-lens-examples-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("ex.jsonl");
        std::fs::write(
            &f,
            "{\"id\": \"a\", \"image\": \"x\", \"question\": \"q\"}\n{\"id\": \"a\", \"image\": \"y\", \"question\": \"q\"}\n",
        )
        .unwrap();
        let e = read(&f, &Columns::default()).unwrap_err().to_string();
        assert!(e.contains("lines 1 and 2 have the same id \"a\""), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn shards_split_every_id_exactly_once() {
        let shards: Vec<Shard> = (1..=3).map(|i| format!("{i}/3").parse().unwrap()).collect();
        for id in (0..1000).map(|i| format!("ex-{i}")) {
            assert_eq!(shards.iter().filter(|s| s.takes(&id)).count(), 1, "{id}");
        }
        // Roughly even: each third holds 333 +- 60 of 1000.
        for s in &shards {
            let n = (0..1000).filter(|i| s.takes(&format!("ex-{i}"))).count();
            assert!((273..=393).contains(&n), "{s:?}: {n}");
        }
        for bad in ["0/3", "4/3", "1", "a/b", "1/0"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
