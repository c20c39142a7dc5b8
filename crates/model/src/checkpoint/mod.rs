//! Safetensors checkpoints: a single `model.safetensors` or shards listed by
//! `model.safetensors.index.json`; memory-mapped natively, owned bytes elsewhere. Tensors are
//! looked up by canonical name (see [`crate::names`]), decoded to f32 one at a time, and checked
//! against the shape the config implies.

pub mod header;
#[cfg(not(target_arch = "wasm32"))]
mod mmap;
pub mod streamed;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use llava_lens_tensor::{DType, decode_to_f32};

use crate::ModelError;
pub use header::{ShardHeader, TensorEntry};
pub use streamed::{RangeReader, StreamedCheckpoint};

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
}

/// All tensors of a checkpoint, by canonical name.
pub struct Checkpoint {
    shards: Vec<Shard>,
    entries: HashMap<String, (usize, TensorEntry)>,
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
        let len = bytes.len() as u64;
        let n = header::header_len(&path, &bytes[..bytes.len().min(8)], len)?;
        let h = header::parse_header(&path, &bytes[8..8 + n as usize], len)?;
        let shard = self.shards.len();
        for t in h.tensors {
            if self.entries.contains_key(&t.name) {
                return Err(ModelError::Safetensors { path, detail: format!("tensor {} appears twice", t.name) });
            }
            self.entries.insert(t.name.clone(), (shard, t));
        }
        self.shards.push(Shard { path, bytes });
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
        let (i, e) = self.entries.get(name).ok_or_else(|| ModelError::MissingTensor {
            name: name.to_string(),
            searched: self.shards.iter().map(|s| s.path.display().to_string()).collect::<Vec<_>>().join(", "),
        })?;
        let shard = &self.shards[*i];
        let bytes = &shard.bytes[e.start as usize..e.end as usize];
        Ok(RawTensor { name, path: &shard.path, dtype: e.dtype, shape: &e.shape, bytes })
    }

    /// Tensor `name` as f32, after checking its shape is `expected`.
    pub fn f32(&self, name: &str, expected: &[usize]) -> Result<Vec<f32>, ModelError> {
        let t = self.raw(name)?;
        decode_checked(t.path, name, t.dtype, t.shape, expected, t.bytes)
    }
}

impl Checkpoint {
    /// Rows `[start, end)` of the matrix `name` as f32, after checking its shape is `expected`.
    pub fn f32_rows(&self, name: &str, expected: &[usize], start: usize, end: usize) -> Result<Vec<f32>, ModelError> {
        let t = self.raw(name)?;
        check_shape(t.path, name, t.shape, expected)?;
        let cols: usize = expected[1..].iter().product();
        let row = t.dtype.row_bytes(cols);
        let rows = [end - start, cols];
        decode_checked(t.path, name, t.dtype, &rows, &rows, &t.bytes[start * row..end * row])
    }
}

/// The shape config.json implies, or an error naming the file and tensor.
pub(crate) fn check_shape(path: &Path, name: &str, shape: &[usize], expected: &[usize]) -> Result<(), ModelError> {
    if shape != expected {
        return Err(ModelError::Tensor {
            path: path.to_path_buf(),
            name: name.to_string(),
            expected: format!("shape {expected:?} (from config.json)"),
            found: format!("shape {shape:?}"),
        });
    }
    Ok(())
}

/// Checks a tensor's stored shape against the one config.json implies, then decodes it to f32.
pub(crate) fn decode_checked(
    path: &Path,
    name: &str,
    dtype: DType,
    shape: &[usize],
    expected: &[usize],
    bytes: &[u8],
) -> Result<Vec<f32>, ModelError> {
    check_shape(path, name, shape, expected)?;
    let values = decode_to_f32(bytes, dtype).map_err(|e| ModelError::Tensor {
        path: path.to_path_buf(),
        name: name.to_string(),
        expected: format!("{dtype} data"),
        found: e.to_string(),
    })?;
    // A NaN or infinite weight would only show up as an empty answer or NaN scores much later.
    if let Some(i) = first_non_finite(&values) {
        return Err(ModelError::Tensor {
            path: path.to_path_buf(),
            name: name.to_string(),
            expected: "finite values".into(),
            found: format!("{} at element {i}: the checkpoint holds non-finite values", values[i]),
        });
    }
    Ok(values)
}

/// The index of the first NaN or infinity. `x * 0` is 0 for finite `x` and NaN otherwise, so
/// eight lane-wise sums find both without a branch per value (this runs over every weight).
pub(crate) fn first_non_finite(values: &[f32]) -> Option<usize> {
    let mut lanes = [0f32; 8];
    let chunks = values.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (acc, x) in lanes.iter_mut().zip(c) {
            *acc += x * 0.0;
        }
    }
    if lanes.iter().chain(rest).all(|x| x.is_finite()) { None } else { values.iter().position(|x| !x.is_finite()) }
}

/// The distinct shard files of an index, in first-seen order.
#[cfg(not(target_arch = "wasm32"))]
fn shard_files(index: &Path) -> Result<Vec<String>, ModelError> {
    let text = std::fs::read_to_string(index).map_err(|e| ModelError::io(index, e))?;
    header::shard_files(index, &text)
}
