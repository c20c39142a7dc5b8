//! Where the loader reads weight bytes from: blobs (files the user chose, files kept in the
//! browser's storage) or a server answering range requests. Each read is one tensor, so wasm
//! memory holds one tensor's bytes at a time, never a whole shard.

use llava_lens_model::ModelError;
use llava_lens_model::checkpoint::RangeReader;
use llava_lens_model::checkpoint::streamed::ReadFuture;

use super::net;

/// `File`s or other `Blob`s, one per shard.
pub struct BlobFiles {
    pub names: Vec<String>,
    pub blobs: Vec<web_sys::Blob>,
}

impl RangeReader for BlobFiles {
    fn read(&self, file: usize, start: u64, end: u64) -> ReadFuture<'_> {
        Box::pin(async move {
            let name = &self.names[file];
            let part = self.blobs[file]
                .slice_with_f64_and_f64(start as f64, end as f64)
                .map_err(|e| ModelError::read(name, format!("bytes {start}..{end}: {}", net::describe(e))))?;
            let buf =
                net::await_promise(part.array_buffer()).await.map_err(|e| ModelError::read(name, format!("bytes {start}..{end}: {e}")))?;
            Ok(js_sys::Uint8Array::new(&buf).to_vec())
        })
    }
}

/// Shards on a server, read by range requests (when the browser has no storage to keep them).
pub struct HttpFiles {
    pub urls: Vec<String>,
}

impl RangeReader for HttpFiles {
    fn read(&self, file: usize, start: u64, end: u64) -> ReadFuture<'_> {
        Box::pin(async move {
            let url = &self.urls[file];
            if end <= start {
                return Ok(Vec::new());
            }
            let resp = net::request(url, "GET", Some((start, Some(end)))).await.map_err(|e| ModelError::read(url, e))?;
            if resp.status() != 206 {
                return Err(ModelError::read(
                    url,
                    format!("asked for bytes {start}..{end}, got HTTP {} instead of a partial answer (206)", resp.status()),
                ));
            }
            let buf = net::await_promise(resp.array_buffer().map_err(|e| ModelError::read(url, net::describe(e)))?)
                .await
                .map_err(|e| ModelError::read(url, e))?;
            Ok(js_sys::Uint8Array::new(&buf).to_vec())
        })
    }
}
