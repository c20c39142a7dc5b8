//! The batch output: JSON lines appended one whole line per write, and on a rerun the ids
//! already there, so a run stopped by Ctrl-C, a crash or a scheduler's time limit resumes where
//! it stopped. Nothing already written is rewritten; the only repair is dropping a last line cut
//! off mid-write (a killed process), which is never a complete result.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Ids with a line in the file (results and recorded errors alike).
    pub done: BTreeSet<String>,
    /// Bytes of a cut-off last line dropped on opening (0 when the file ended cleanly).
    pub repaired_bytes: u64,
}

impl Journal {
    /// Opens `path` for appending, creating it; reads the ids of the lines already there.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let name = || path.display().to_string();
        let mut done = BTreeSet::new();
        let mut repaired_bytes = 0;
        if path.exists() {
            let bytes = std::fs::read(path).with_context(|| format!("reading {} to resume", name()))?;
            let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            for (n, line) in bytes[..complete].split(|&b| b == b'\n').enumerate().filter(|(_, l)| !l.is_empty()) {
                let id = serde_json::from_slice::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(String::from))
                    .with_context(|| {
                        format!("{}: line {} is not a batch result (a JSON object with an \"id\"); this file is not a batch output, or it was edited: refusing to append to it", name(), n + 1)
                    })?;
                if !done.insert(id.clone()) {
                    bail!("{}: the id {id:?} appears twice (line {}); refusing to append to it", name(), n + 1);
                }
            }
            if complete < bytes.len() {
                repaired_bytes = (bytes.len() - complete) as u64;
                let f = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .with_context(|| format!("opening {} to drop its cut-off last line", name()))?;
                f.set_len(complete as u64).with_context(|| format!("dropping the cut-off last line of {}", name()))?;
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("opening {} for appending", name()))?;
        Ok(Journal { path: path.to_path_buf(), file, done, repaired_bytes })
    }

    /// Appends `value` as one line, in a single write, and flushes it to the file: after a crash
    /// the line is there whole or (cut off mid-write) dropped by the next [`Journal::open`].
    pub fn append(&mut self, id: &str, value: &serde_json::Value) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(value)?;
        line.push(b'\n');
        self.file.write_all(&line).with_context(|| format!("appending to {}", self.path.display()))?;
        self.file.flush()?;
        self.done.insert(id.to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("llava-lens-journal-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("out.jsonl")
    }

    #[test]
    fn a_rerun_sees_what_is_done_and_drops_only_a_cut_off_line() {
        let path = temp("resume");
        let mut j = Journal::open(&path).unwrap();
        j.append("a", &json!({"id": "a", "x": 1})).unwrap();
        j.append("b", &json!({"id": "b", "error": "no image"})).unwrap();
        drop(j);
        // A process killed in the middle of its third line.
        let torn = br#"{"id": "c", "head_sc"#;
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(torn).unwrap();
        drop(f);
        let mut j = Journal::open(&path).unwrap();
        assert_eq!(j.done.iter().map(String::as_str).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(j.repaired_bytes, torn.len() as u64);
        j.append("c", &json!({"id": "c"})).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "{text}");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_file_that_is_not_a_batch_output_is_left_alone() {
        let path = temp("foreign");
        std::fs::write(&path, "name,score\nx,1\n").unwrap();
        let e = Journal::open(&path).unwrap_err().to_string();
        assert!(e.contains("line 1 is not a batch result") && e.contains("refusing to append"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "name,score\nx,1\n", "untouched");
        std::fs::write(&path, "{\"id\": \"a\"}\n{\"id\": \"a\"}\n").unwrap();
        assert!(Journal::open(&path).unwrap_err().to_string().contains("appears twice (line 2)"));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
