//! A safetensors header on its own: the 8-byte length, then the JSON table of tensors. Parsed
//! apart from the data so that a shard can be indexed from its first bytes (a range request, a
//! slice of a file) and its tensors read one at a time later.

use std::path::{Path, PathBuf};

use llava_lens_tensor::DType;

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

/// One entry of the JSON table as written. Offsets are u64: a 32-bit target (wasm32) must
/// still read shards over 4 GiB, which `safetensors::Metadata` (usize offsets) cannot.
#[derive(serde::Deserialize)]
struct RawInfo {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

/// Bytes per element of every safetensors dtype (None: not a dtype the format defines).
fn element_bytes(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => 1,
        "U16" | "I16" | "F16" | "BF16" => 2,
        "U32" | "I32" | "F32" => 4,
        "U64" | "I64" | "F64" => 8,
        _ => return None,
    })
}

/// Parses the JSON header (the `n` bytes after the length) of a shard of `file_len` bytes and
/// checks it as safetensors does (offsets contiguous from 0, each tensor's bytes its elements
/// times its dtype's size). Tensors outside Llava's modules are left out; the data section must
/// end exactly at the end of the file, so a truncated download is caught here, before any
/// tensor is read.
pub fn parse_header(path: &Path, json: &[u8], file_len: u64) -> Result<ShardHeader, ModelError> {
    let text = std::str::from_utf8(json).map_err(|e| bad(path, format!("header is not UTF-8: {e}")))?;
    let table: std::collections::HashMap<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| bad(path, format!("header is not a safetensors table: {e}")))?;
    let mut infos = Vec::with_capacity(table.len());
    for (name, value) in table {
        if name == "__metadata__" {
            continue;
        }
        let info: RawInfo = serde_json::from_value(value).map_err(|e| bad(path, format!("tensor {name}: {e}")))?;
        infos.push((name, info));
    }
    infos.sort_by_key(|(_, i)| i.data_offsets);
    let mut at = 0u64;
    for (name, i) in &infos {
        let (s, e) = i.data_offsets;
        let size = element_bytes(&i.dtype).ok_or_else(|| bad(path, format!("tensor {name} has unknown dtype {:?}", i.dtype)))?;
        let bytes = i
            .shape
            .iter()
            .try_fold(size, |a, &d| a.checked_mul(d))
            .ok_or_else(|| bad(path, format!("tensor {name}: shape {:?} overflows", i.shape)))?;
        if s != at || e < s || e - s != bytes {
            return Err(bad(
                path,
                format!(
                    "tensor {name}: bytes {s}..{e} do not follow the previous tensor (at {at}) or do not hold its shape {:?} of {}",
                    i.shape, i.dtype
                ),
            ));
        }
        at = e;
    }
    let data_start = 8 + json.len() as u64;
    if data_start.checked_add(at) != Some(file_len) {
        return Err(bad(
            path,
            format!("the header describes {at} bytes of data but the file holds {}; is it truncated?", file_len.saturating_sub(data_start)),
        ));
    }
    let mut tensors = Vec::new();
    for (name, info) in infos {
        let Some(canonical) = names::canonical(&name) else { continue };
        let dtype = match info.dtype.as_str() {
            "F32" => DType::F32,
            "F16" => DType::F16,
            "BF16" => DType::Bf16,
            d => return Err(bad(path, format!("tensor {name} has dtype {d}; expected F32, F16 or BF16"))),
        };
        let shape = info
            .shape
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| bad(path, format!("tensor {name}: dimension {d} is too large here"))))
            .collect::<Result<Vec<usize>, _>>()?;
        let (s, e) = info.data_offsets;
        tensors.push(TensorEntry { name: canonical, dtype, shape, start: data_start + s, end: data_start + e });
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
    fn offsets_past_4_gib_parse_on_any_target() {
        // lm_head of a 7B shard placed after 4.5 GB of other tensors (no data needed to parse).
        let big = 4_500_000_000u64;
        let h = format!(
            r#"{{"__metadata__":{{"format":"pt"}},"model.layers.0.x":{{"dtype":"F16","shape":[{}],"data_offsets":[0,{big}]}},"lm_head.weight":{{"dtype":"F16","shape":[32064,4096],"data_offsets":[{big},{}]}}}}"#,
            big / 2,
            big + 32064 * 4096 * 2
        );
        let p = Path::new("model-00003-of-00003.safetensors");
        let len = 8 + h.len() as u64 + big + 32064 * 4096 * 2;
        let sh = parse_header(p, h.as_bytes(), len).unwrap();
        let t = sh.tensors.iter().find(|t| t.name.ends_with("lm_head.weight")).unwrap();
        assert_eq!(
            (t.name.as_str(), t.start, t.end - t.start),
            ("language_model.lm_head.weight", 8 + h.len() as u64 + big, 32064 * 4096 * 2)
        );
    }

    #[test]
    fn tables_safetensors_would_refuse_are_refused() {
        let p = Path::new("bad.safetensors");
        for (h, why) in [
            (r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, "follow"),
            (r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, "follow"),
            (r#"{"a":{"dtype":"Q9","shape":[1],"data_offsets":[0,4]}}"#, "unknown dtype"),
            (r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}}"#, "overflows"),
            (r#"{"a":{"dtype":"F32","shape":[1]}}"#, "tensor a"),
            (r#"[1,2]"#, "not a safetensors table"),
        ] {
            let e = parse_header(p, h.as_bytes(), 8 + h.len() as u64 + 4).unwrap_err().to_string();
            assert!(e.contains("bad.safetensors") && e.contains(why), "{h}: {e}");
        }
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
