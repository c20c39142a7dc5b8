//! A safetensors header on its own: the 8-byte length, then the JSON table of tensors. Parsed
//! apart from the data so that a shard can be indexed from its first bytes (a range request, a
//! slice of a file) and its tensors read one at a time later.

use std::path::{Path, PathBuf};

use llava_lens_tensor::DType;
use safetensors::tensor::{Dtype, Metadata};

use crate::{ModelError, names};

/// Headers larger than this are refused before they are read (safetensors' own limit).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// One tensor of a shard, under its canonical name, with byte offsets from the file's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub start: u64,
    pub end: u64,
}

/// The tensors of one shard file that belong to Llava.
#[derive(Debug, Clone)]
pub struct ShardHeader {
    pub path: PathBuf,
    /// Offset of the data section (8 + header length).
    pub data_start: u64,
    pub tensors: Vec<TensorEntry>,
}

fn bad(path: &Path, detail: impl Into<String>) -> ModelError {
    ModelError::Safetensors { path: path.to_path_buf(), detail: detail.into() }
}

fn dtype_of(d: Dtype) -> Option<DType> {
    match d {
        Dtype::F32 => Some(DType::F32),
        Dtype::F16 => Some(DType::F16),
        Dtype::BF16 => Some(DType::Bf16),
        _ => None,
    }
}

/// The header length stored in a shard's first 8 bytes, checked against the file size.
pub fn header_len(path: &Path, first8: &[u8], file_len: u64) -> Result<u64, ModelError> {
    let arr: [u8; 8] = first8
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad(path, format!("{} bytes; a shard starts with an 8-byte header length", first8.len())))?;
    let n = u64::from_le_bytes(arr);
    if n > MAX_HEADER_BYTES || n > file_len.saturating_sub(8) {
        return Err(bad(path, format!("header length {n} does not fit a file of {file_len} bytes")));
    }
    Ok(n)
}

/// Parses the JSON header (the `n` bytes after the length) of a shard of `file_len` bytes.
/// Tensors outside Llava's modules are left out; the data section must end exactly at the end
/// of the file, so a truncated download is caught here, before any tensor is read.
pub fn parse_header(path: &Path, json: &[u8], file_len: u64) -> Result<ShardHeader, ModelError> {
    let text = std::str::from_utf8(json).map_err(|e| bad(path, format!("header is not UTF-8: {e}")))?;
    let meta: Metadata = serde_json::from_str(text).map_err(|e| bad(path, format!("header is not a safetensors table: {e}")))?;
    let data_start = 8 + json.len() as u64;
    let infos = meta.tensors();
    let data_end = infos.values().map(|i| i.data_offsets.1 as u64).max().unwrap_or(0);
    if data_start + data_end != file_len {
        return Err(bad(
            path,
            format!(
                "the header describes {} bytes of data but the file holds {}; is it truncated?",
                data_end,
                file_len.saturating_sub(data_start)
            ),
        ));
    }
    let mut tensors = Vec::new();
    let mut sorted: Vec<_> = infos.into_iter().collect();
    sorted.sort_by_key(|(_, i)| i.data_offsets);
    for (name, info) in sorted {
        let Some(canonical) = names::canonical(&name) else { continue };
        let dtype = dtype_of(info.dtype)
            .ok_or_else(|| bad(path, format!("tensor {name} has dtype {:?}; expected F32, F16 or BF16", info.dtype)))?;
        let (s, e) = info.data_offsets;
        tensors.push(TensorEntry {
            name: canonical,
            dtype,
            shape: info.shape.clone(),
            start: data_start + s as u64,
            end: data_start + e as u64,
        });
    }
    Ok(ShardHeader { path: path.to_path_buf(), data_start, tensors })
}

/// The distinct shard files named by a `model.safetensors.index.json`, in first-seen order.
pub fn shard_files(index: &Path, text: &str) -> Result<Vec<String>, ModelError> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| ModelError::config(index, format!("not valid JSON: {e}")))?;
    let map = v.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| ModelError::config(index, "missing weight_map object"))?;
    let mut files: Vec<String> = Vec::new();
    for (name, file) in map {
        let f = file.as_str().ok_or_else(|| ModelError::config(index, format!("weight_map.{name} is {file}; expected a file name")))?;
        if f.contains('/') || f.contains('\\') || f.starts_with('.') || f.is_empty() {
            return Err(ModelError::config(index, format!("weight_map.{name} names {f:?}; expected a file in the model folder")));
        }
        if !files.iter().any(|x| x == f) {
            files.push(f.to_string());
        }
    }
    if files.is_empty() {
        return Err(ModelError::config(index, "weight_map lists no files"));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(header: &str, data: usize) -> Vec<u8> {
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend(header.as_bytes());
        v.extend(vec![0u8; data]);
        v
    }

    #[test]
    fn offsets_are_absolute_and_foreign_tensors_dropped() {
        let h = r#"{"lm_head.weight":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},"other.x":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}"#;
        let f = shard(h, 16);
        let p = Path::new("s.safetensors");
        let n = header_len(p, &f[..8], f.len() as u64).unwrap();
        let sh = parse_header(p, &f[8..8 + n as usize], f.len() as u64).unwrap();
        assert_eq!(sh.tensors.len(), 1);
        let t = &sh.tensors[0];
        assert_eq!((t.name.as_str(), t.start, t.end), ("language_model.lm_head.weight", 8 + n, 8 + n + 12));
    }

    #[test]
    fn truncation_and_bad_lengths_are_named() {
        let h = r#"{"lm_head.weight":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
        let f = shard(h, 16);
        let p = Path::new("cut.safetensors");
        let n = header_len(p, &f[..8], f.len() as u64).unwrap();
        let e = parse_header(p, &f[8..8 + n as usize], f.len() as u64 - 3).unwrap_err().to_string();
        assert!(e.contains("cut.safetensors") && e.contains("truncated"), "{e}");
        let e = header_len(p, &f[..8], 20).unwrap_err().to_string();
        assert!(e.contains("does not fit"), "{e}");
        assert!(header_len(p, &[1, 2], 100).is_err());
    }

    #[test]
    fn index_files_in_order_and_checked() {
        let p = Path::new("model.safetensors.index.json");
        let ok = r#"{"weight_map":{"a":"m-1.safetensors","b":"m-2.safetensors","c":"m-1.safetensors"}}"#;
        assert_eq!(shard_files(p, ok).unwrap(), ["m-1.safetensors", "m-2.safetensors"]);
        for bad in [r#"{"weight_map":{"a":"../x"}}"#, r#"{"weight_map":{}}"#, r#"{"x":1}"#, "nope"] {
            assert!(shard_files(p, bad).is_err(), "{bad}");
        }
    }
}
