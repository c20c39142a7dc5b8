//! Output files checked before any work: a path that cannot be written fails in a second, not
//! after a model load and an explanation whose results would then be lost.

use std::path::Path;

use anyhow::{Context, bail};

/// What a file will hold (a PNG needs its extension: the encoder is chosen by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Png,
}

/// An error unless `path` can be written as `kind`: its folder exists and takes new files, it is
/// not a folder itself, an existing file there is writable (it is not truncated here), and a PNG
/// path ends in .png (the encoder is chosen by the extension). Nothing is left behind.
pub fn check_writable(path: &Path, kind: Kind, flag: &str) -> anyhow::Result<()> {
    let what = || format!("{flag} {}", path.display());
    if matches!(kind, Kind::Png) && !path.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) {
        bail!("{}: a PNG is written here, so the name must end in .png", what());
    }
    if path.is_dir() {
        bail!("{}: is a folder; give a file name", what());
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        bail!("{}: the folder {} does not exist", what(), dir.display());
    }
    if path.exists() {
        std::fs::OpenOptions::new().append(true).open(path).with_context(|| format!("{}: the file cannot be written", what()))?;
    } else {
        let probe = dir.join(format!(".llava-lens-write-check-{}", std::process::id()));
        std::fs::File::create(&probe).with_context(|| format!("{}: no new file can be created in {}", what(), dir.display()))?;
        let _ = std::fs::remove_file(&probe);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwritable_outputs_fail_before_any_work() {
        let dir = std::env::temp_dir().join(format!("llava-lens-out-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(check_writable(&dir.join("map.png"), Kind::Png, "--out").is_ok());
        assert!(!dir.join("map.png").exists(), "the check leaves no file behind");
        let e = check_writable(&dir.join("map.jpg"), Kind::Png, "--out").unwrap_err().to_string();
        assert!(e.contains("--out") && e.contains("must end in .png"), "{e}");
        let e = check_writable(&dir.join("missing/out.json"), Kind::Text, "--json").unwrap_err().to_string();
        assert!(e.contains("--json") && e.contains("does not exist"), "{e}");
        let e = check_writable(&dir, Kind::Text, "--json").unwrap_err().to_string();
        assert!(e.contains("is a folder"), "{e}");
        let existing = dir.join("kept.json");
        std::fs::write(&existing, "old").unwrap();
        assert!(check_writable(&existing, Kind::Text, "--json").is_ok());
        assert_eq!(std::fs::read_to_string(&existing).unwrap(), "old", "an existing file is not truncated by the check");
        let _ = std::fs::remove_dir_all(dir);
    }
}
