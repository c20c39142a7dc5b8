//! A checkpoint read piece by piece: each shard's header first, then one tensor's bytes at a
//! time, from wherever a [`RangeReader`] reads (HTTP range requests, a browser `File` or OPFS
//! file, memory in tests). Memory holds the tensor being converted, never a whole shard.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use super::header::{self, ShardHeader, TensorEntry};
use super::{check_shape, decode_checked};
use crate::ModelError;
use crate::weights::{TensorFuture, WeightSource};

/// Bytes `[start, end)` of one of the checkpoint's files.
pub type ReadFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>, ModelError>> + 'a>>;

/// Reads byte ranges of the files of a checkpoint, by index into [`StreamedCheckpoint::open`]'s list.
pub trait RangeReader {
    fn read(&self, file: usize, start: u64, end: u64) -> ReadFuture<'_>;
}

/// Any reader behind a box (a caller that picks its reader at run time).
impl<R: RangeReader + ?Sized> RangeReader for Box<R> {
    fn read(&self, file: usize, start: u64, end: u64) -> ReadFuture<'_> {
        (**self).read(file, start, end)
    }
}

/// In-memory files (tests, and small models fetched whole).
impl RangeReader for Vec<Vec<u8>> {
    fn read(&self, file: usize, start: u64, end: u64) -> ReadFuture<'_> {
        let r = self
            .get(file)
            .and_then(|f| f.get(start as usize..end as usize))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| ModelError::read(format!("file {file}"), format!("bytes {start}..{end} are outside the file")));
        Box::pin(std::future::ready(r))
    }
}

/// The tensors of a checkpoint, indexed from the shards' headers, read on demand.
pub struct StreamedCheckpoint<R> {
    reader: R,
    shards: Vec<ShardHeader>,
    entries: HashMap<String, (usize, usize)>,
}

impl<R> std::fmt::Debug for StreamedCheckpoint<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let files: Vec<_> = self.shards.iter().map(|s| s.path.display().to_string()).collect();
        f.debug_struct("StreamedCheckpoint").field("files", &files).field("tensors", &self.entries.len()).finish()
    }
}

impl<R: RangeReader> StreamedCheckpoint<R> {
    /// Reads the header of each file (`(name, size in bytes)`, in the reader's order).
    pub async fn open(reader: R, files: &[(PathBuf, u64)]) -> Result<Self, ModelError> {
        let mut ckpt = StreamedCheckpoint { reader, shards: Vec::new(), entries: HashMap::new() };
        for (i, (path, len)) in files.iter().enumerate() {
            let first = ckpt.reader.read(i, 0, 8.min(*len)).await?;
            let n = header::header_len(path, &first, *len)?;
            let json = ckpt.reader.read(i, 8, 8 + n).await?;
            let h = header::parse_header(path, &json, *len)?;
            for (j, t) in h.tensors.iter().enumerate() {
                if ckpt.entries.insert(t.name.clone(), (i, j)).is_some() {
                    return Err(ModelError::Safetensors { path: path.clone(), detail: format!("tensor {} appears twice", t.name) });
                }
            }
            ckpt.shards.push(h);
        }
        Ok(ckpt)
    }

    /// Canonical names of every tensor, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = self.entries.keys().cloned().collect();
        n.sort();
        n
    }

    fn entry(&self, name: &str) -> Result<(usize, &TensorEntry), ModelError> {
        let &(i, j) = self.entries.get(name).ok_or_else(|| ModelError::MissingTensor {
            name: name.to_string(),
            searched: self.shards.iter().map(|s| s.path.display().to_string()).collect::<Vec<_>>().join(", "),
        })?;
        Ok((i, &self.shards[i].tensors[j]))
    }

    /// The largest tensor in bytes as stored (what one read holds in memory at once).
    pub fn largest_tensor_bytes(&self) -> u64 {
        self.shards.iter().flat_map(|s| &s.tensors).map(|t| t.end - t.start).max().unwrap_or(0)
    }
}

impl<R: RangeReader> WeightSource for StreamedCheckpoint<R> {
    fn f32<'a>(&'a self, name: &'a str, shape: &'a [usize]) -> TensorFuture<'a> {
        Box::pin(async move {
            let (i, t) = self.entry(name)?;
            let path = &self.shards[i].path;
            if t.shape != shape {
                return decode_checked(path, name, t.dtype, &t.shape, shape, &[]);
            }
            let bytes = self.reader.read(i, t.start, t.end).await?;
            if bytes.len() as u64 != t.end - t.start {
                return Err(ModelError::read(path, format!("tensor {name}: got {} bytes, expected {}", bytes.len(), t.end - t.start)));
            }
            decode_checked(path, name, t.dtype, &t.shape, shape, &bytes)
        })
    }

    fn f32_rows<'a>(&'a self, name: &'a str, shape: &'a [usize], start: usize, end: usize) -> TensorFuture<'a> {
        Box::pin(async move {
            let (i, t) = self.entry(name)?;
            let path = &self.shards[i].path;
            check_shape(path, name, &t.shape, shape)?;
            let cols: usize = shape[1..].iter().product();
            let row = t.dtype.row_bytes(cols) as u64;
            let (a, b) = (t.start + start as u64 * row, t.start + end as u64 * row);
            if end < start || b > t.end {
                return Err(ModelError::read(path, format!("tensor {name}: rows {start}..{end} are outside its {} rows", shape[0])));
            }
            let bytes = self.reader.read(i, a, b).await?;
            if bytes.len() as u64 != b - a {
                return Err(ModelError::read(path, format!("tensor {name}: got {} bytes, expected {}", bytes.len(), b - a)));
            }
            let rows = [end - start, cols];
            decode_checked(path, name, t.dtype, &rows, &rows, &bytes)
        })
    }

    fn reads_rows(&self) -> bool {
        true
    }

    fn check_shape(&self, name: &str, shape: &[usize]) -> Result<(), ModelError> {
        let (i, t) = self.entry(name)?;
        check_shape(&self.shards[i].path, name, &t.shape, shape)
    }
}
