//! Safetensors checkpoints: a single `model.safetensors` or shards listed by
//! `model.safetensors.index.json`; memory-mapped natively, owned bytes elsewhere. Tensors are
//! looked up by canonical name (see [`crate::names`]), decoded to f32 one at a time, and checked
//! against the shape the config implies.

#[cfg(not(target_arch = "wasm32"))]
mod mmap;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use llava_lens_tensor::{DType, decode_to_f32};
use safetensors::tensor::{Dtype, SafeTensors};

use crate::{ModelError, names};

enum Bytes {
    #[cfg(not(target_arch = "wasm32"))]
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            #[cfg(not(target_arch = "wasm32"))]
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

struct Shard {
    path: PathBuf,
    bytes: Bytes,
    /// Start of the data section.
    data_start: usize,
}

#[derive(Debug, Clone)]
struct Entry {
    shard: usize,
    dtype: DType,
    shape: Vec<usize>,
    range: (usize, usize),
}

/// All tensors of a checkpoint, by canonical name.
pub struct Checkpoint {
    shards: Vec<Shard>,
    entries: HashMap<String, Entry>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let files: Vec<_> = self.shards.iter().map(|s| s.path.display().to_string()).collect();
        f.debug_struct("Checkpoint").field("files", &files).field("tensors", &self.entries.len()).finish()
    }
}

/// A tensor's bytes as stored, with where they came from.
#[derive(Debug)]
pub struct RawTensor<'a> {
    pub name: &'a str,
    pub path: &'a Path,
    pub dtype: DType,
    pub shape: &'a [usize],
    pub bytes: &'a [u8],
}

fn dtype_of(d: Dtype) -> Option<DType> {
    match d {
        Dtype::F32 => Some(DType::F32),
        Dtype::F16 => Some(DType::F16),
        Dtype::BF16 => Some(DType::Bf16),
        _ => None,
    }
}

impl Checkpoint {
    /// Opens the safetensors weights of an HF model folder (sharded or not).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(dir: &Path) -> Result<Self, ModelError> {
        let index = dir.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if index.exists() {
            shard_files(&index)?.into_iter().map(|f| dir.join(f)).collect()
        } else {
            let single = dir.join("model.safetensors");
            if !single.exists() {
                return Err(ModelError::io(
                    &single,
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no model.safetensors and no model.safetensors.index.json in the model folder",
                    ),
                ));
            }
            vec![single]
        };
        let mut ckpt = Checkpoint { shards: Vec::new(), entries: HashMap::new() };
        for path in files {
            if !path.exists() {
                return Err(ModelError::io(
                    &path,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "shard listed in model.safetensors.index.json is missing"),
                ));
            }
            let bytes = Bytes::Mapped(mmap::map(&path)?);
            ckpt.add_shard(path, bytes)?;
        }
        Ok(ckpt)
    }

    /// A checkpoint from in-memory files (`(name, bytes)` pairs), e.g. fetched in the browser.
    pub fn from_files(files: Vec<(PathBuf, Vec<u8>)>) -> Result<Self, ModelError> {
        let mut ckpt = Checkpoint { shards: Vec::new(), entries: HashMap::new() };
        for (path, bytes) in files {
            ckpt.add_shard(path, Bytes::Owned(bytes))?;
        }
        Ok(ckpt)
    }

    fn add_shard(&mut self, path: PathBuf, bytes: Bytes) -> Result<(), ModelError> {
        let bad = |detail: String| ModelError::Safetensors { path: path.clone(), detail };
        let (n, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(format!("{e:?}")))?;
        let shard = self.shards.len();
        for (name, info) in meta.tensors() {
            let Some(canonical) = names::canonical(&name) else { continue };
            let dtype =
                dtype_of(info.dtype).ok_or_else(|| bad(format!("tensor {name} has dtype {:?}; expected F32, F16 or BF16", info.dtype)))?;
            if self.entries.contains_key(&canonical) {
                return Err(bad(format!("tensor {name} appears twice (as {canonical})")));
            }
            self.entries.insert(canonical, Entry { shard, dtype, shape: info.shape.clone(), range: info.data_offsets });
        }
        self.shards.push(Shard { path, bytes, data_start: 8 + n });
        Ok(())
    }

    /// Canonical names of every tensor, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = self.entries.keys().cloned().collect();
        n.sort();
        n
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The stored bytes of tensor `name` (canonical).
    pub fn raw<'a>(&'a self, name: &'a str) -> Result<RawTensor<'a>, ModelError> {
        let e = self.entries.get(name).ok_or_else(|| ModelError::MissingTensor {
            name: name.to_string(),
            searched: self.shards.iter().map(|s| s.path.display().to_string()).collect::<Vec<_>>().join(", "),
        })?;
        let shard = &self.shards[e.shard];
        let bytes = &shard.bytes[shard.data_start + e.range.0..shard.data_start + e.range.1];
        Ok(RawTensor { name, path: &shard.path, dtype: e.dtype, shape: &e.shape, bytes })
    }

    /// Tensor `name` as f32, after checking its shape is `expected`.
    pub fn f32(&self, name: &str, expected: &[usize]) -> Result<Vec<f32>, ModelError> {
        let t = self.raw(name)?;
        if t.shape != expected {
            return Err(ModelError::Tensor {
                path: t.path.to_path_buf(),
                name: name.to_string(),
                expected: format!("shape {expected:?} (from config.json)"),
                found: format!("shape {:?}", t.shape),
            });
        }
        decode_to_f32(t.bytes, t.dtype).map_err(|e| ModelError::Tensor {
            path: t.path.to_path_buf(),
            name: name.to_string(),
            expected: format!("{} data", t.dtype),
            found: e.to_string(),
        })
    }
}

/// The distinct shard files of an index, in first-seen order.
#[cfg(not(target_arch = "wasm32"))]
fn shard_files(index: &Path) -> Result<Vec<String>, ModelError> {
    let text = std::fs::read_to_string(index).map_err(|e| ModelError::io(index, e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| ModelError::config(index, format!("not valid JSON: {e}")))?;
    let map = v.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| ModelError::config(index, "missing weight_map object"))?;
    let mut files: Vec<String> = Vec::new();
    for (name, file) in map {
        let f = file.as_str().ok_or_else(|| ModelError::config(index, format!("weight_map.{name} is {file}; expected a file name")))?;
        if f.contains('/') || f.contains('\\') || f.starts_with('.') {
            return Err(ModelError::config(index, format!("weight_map.{name} names {f:?}; expected a file in the model folder")));
        }
        if !files.iter().any(|x| x == f) {
            files.push(f.to_string());
        }
    }
    Ok(files)
}
