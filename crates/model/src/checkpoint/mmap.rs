//! Memory-mapping a checkpoint shard (native only): weights are read straight from the page cache,
//! one tensor at a time, never copied whole into memory.
#![allow(unsafe_code)]

use std::fs::File;
use std::path::Path;

use crate::ModelError;

pub(crate) fn map(path: &Path) -> Result<memmap2::Mmap, ModelError> {
    let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
    // SAFETY: the map is read-only and private to this process. If another process truncates or
    // rewrites the file while it is mapped, reads may fault or see new bytes; that is the usual
    // contract of loading model files by mmap (as safetensors and candle do), and every byte read
    // is validated (header, offsets, lengths) before use.
    unsafe { memmap2::Mmap::map(&file) }.map_err(|e| ModelError::io(path, e))
}
