//! The browser's private storage (OPFS) as a model cache: one folder per model URL holding its
//! files and a manifest.json ([`StoredModel`]). Downloads write through a sync access handle
//! (dedicated workers only), so an interrupted download keeps its bytes and resumes with a
//! range request; each file is checked for its announced size and, where the server states one,
//! its SHA-256.

use sha2::{Digest, Sha256};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{FileSystemDirectoryHandle, FileSystemFileHandle, FileSystemSyncAccessHandle};

use super::net::{self, FetchError, await_promise, describe};
use super::scope;
use crate::files::{self, StoredFile, StoredModel};

const ROOT: &str = "llava-lens";
const MANIFEST: &str = "manifest.json";
/// A new manifest is written here in full first, then copied over [`MANIFEST`], then removed:
/// whenever a write is cut (a full quota, a closed tab), one of the two is whole.
const MANIFEST_NEXT: &str = "manifest.next.json";
/// Suffix of the file beside a download holding its validator (ETag or Last-Modified).
const VALIDATOR: &str = ".validator";

/// An open sync access handle, closed when dropped (it locks the file until then).
struct Access(FileSystemSyncAccessHandle);

impl Drop for Access {
    fn drop(&mut self) {
        self.0.close();
    }
}

fn at(offset: u64) -> web_sys::FileSystemReadWriteOptions {
    let o = web_sys::FileSystemReadWriteOptions::new();
    o.set_at(offset as f64);
    o
}

pub struct Store {
    root: FileSystemDirectoryHandle,
}

async fn dir_in(parent: &FileSystemDirectoryHandle, name: &str, create: bool) -> Result<FileSystemDirectoryHandle, String> {
    let o = web_sys::FileSystemGetDirectoryOptions::new();
    o.set_create(create);
    Ok(await_promise(parent.get_directory_handle_with_options(name, &o)).await?.unchecked_into())
}

async fn file_in(dir: &FileSystemDirectoryHandle, name: &str, create: bool) -> Result<FileSystemFileHandle, String> {
    let o = web_sys::FileSystemGetFileOptions::new();
    o.set_create(create);
    Ok(await_promise(dir.get_file_handle_with_options(name, &o)).await?.unchecked_into())
}

async fn access(dir: &FileSystemDirectoryHandle, name: &str) -> Result<Access, String> {
    let h = file_in(dir, name, true).await?;
    let a = await_promise(h.create_sync_access_handle())
        .await
        .map_err(|e| format!("{name} is in use ({e}); is the page open in another tab?"))?;
    Ok(Access(a.unchecked_into()))
}

/// The browser's storage estimate: (used, allowed) bytes.
pub async fn usage() -> Option<(u64, u64)> {
    let storage = scope().navigator().storage();
    let est = await_promise(storage.estimate().ok()?).await.ok()?;
    let est: web_sys::StorageEstimate = est.unchecked_into();
    Some((est.get_usage()? as u64, est.get_quota()? as u64))
}

impl Store {
    /// The cache, or why this browser has none (private windows, old browsers).
    pub async fn open() -> Result<Store, String> {
        let storage = scope().navigator().storage();
        let top: FileSystemDirectoryHandle = await_promise(storage.get_directory()).await?.unchecked_into();
        Ok(Store { root: dir_in(&top, ROOT, true).await? })
    }

    async fn dir(&self, key: &str) -> Result<FileSystemDirectoryHandle, String> {
        dir_in(&self.root, key, true).await
    }

    /// The manifest of `key`, if one is whole and belongs to `url` (any URL when None): the
    /// next one if its write completed, else the current one.
    pub async fn manifest(&self, key: &str, url: Option<&str>) -> Option<StoredModel> {
        let dir = dir_in(&self.root, key, false).await.ok()?;
        for name in [MANIFEST_NEXT, MANIFEST] {
            if let Some(m) = read_text(&dir, name).await.and_then(|t| StoredModel::parse(&t, key, url)) {
                return Some(m);
            }
        }
        None
    }

    pub async fn save_manifest(&self, m: &StoredModel) -> Result<(), String> {
        let text = serde_json::to_vec(m).map_err(|e| e.to_string())?;
        self.write(&m.key, MANIFEST_NEXT, &text).await?;
        self.write(&m.key, MANIFEST, &text).await?;
        self.remove_entry(&m.key, MANIFEST_NEXT).await;
        Ok(())
    }

    /// Every stored model: those with a whole manifest, and every other folder as a damaged
    /// entry listing its files, so no stored byte is invisible or undeletable.
    pub async fn list(&self) -> Result<Vec<StoredModel>, String> {
        let mut out = Vec::new();
        for key in entries(&self.root).await? {
            if let Some(m) = self.manifest(&key, None).await {
                out.push(m);
                continue;
            }
            let mut files = Vec::new();
            if let Ok(dir) = dir_in(&self.root, &key, false).await {
                let names = entries(&dir).await.unwrap_or_default();
                if names.is_empty() {
                    // An empty folder holds nothing to show or free.
                    let _ = self.delete(&key).await;
                    continue;
                }
                for name in names {
                    if let Ok(h) = file_in(&dir, &name, false).await {
                        let size = await_promise(h.get_file()).await.ok().map(|f| f.unchecked_into::<web_sys::File>().size() as u64);
                        files.push(StoredFile { name, bytes: size.unwrap_or(0), sha256: None, complete: false });
                    }
                }
            }
            out.push(StoredModel { url: format!("{key} (its manifest is damaged: delete it)"), key, files, damaged: true });
        }
        out.sort_by(|a, b| a.url.cmp(&b.url));
        Ok(out)
    }

    pub async fn delete(&self, key: &str) -> Result<(), String> {
        let o = web_sys::FileSystemRemoveOptions::new();
        o.set_recursive(true);
        await_promise(self.root.remove_entry_with_options(key, &o)).await.map(|_| ()).map_err(|e| format!("could not delete {key}: {e}"))
    }

    /// A stored file as a `File` (a blob the loader slices).
    pub async fn file(&self, key: &str, name: &str) -> Result<web_sys::File, String> {
        let h = file_in(&self.dir(key).await?, name, false).await.map_err(|_| format!("{name} is not in the browser's storage"))?;
        Ok(await_promise(h.get_file()).await?.unchecked_into())
    }

    pub async fn read(&self, key: &str, name: &str) -> Result<Vec<u8>, String> {
        let f = self.file(key, name).await?;
        let buf = await_promise(f.array_buffer()).await?;
        Ok(js_sys::Uint8Array::new(&buf).to_vec())
    }

    /// Downloads `url` into the model's folder as `name`, resuming from the bytes already there.
    /// `expected` is the size announced before (HEAD), used where the answer's headers are not
    /// readable (Content-Range is not exposed to pages across origins unless the server says
    /// so). A resume sends `If-Range` with the validator the first answer gave (its ETag or
    /// Last-Modified, kept beside the part), so a file changed on the server restarts from 0
    /// instead of joining two versions. `progress` gets the bytes of this file on disk. A file
    /// the server says is absent ([`net::check_answer`]) leaves nothing behind in storage.
    ///
    /// `limit` caps the file's size (small files: [`files::small_file_limit`]): a larger
    /// announced size is refused before anything is written. The body stops at the announced
    /// size or the limit, whichever is known: a server that sends more is not trusted, and what
    /// it sent is discarded. A write the storage refuses (its quota is full) removes the part,
    /// which could never complete, and says how to free space.
    pub async fn download(
        &self,
        key: &str,
        url: &str,
        name: &str,
        expected: Option<u64>,
        limit: Option<u64>,
        progress: &dyn Fn(u64, u64),
    ) -> Result<StoredFile, FetchError> {
        let dir = self.dir(key).await?;
        let a = access(&dir, name).await?;
        let sidecar = format!("{name}{VALIDATOR}");
        let in_store = |e: JsValue| format!("{name} in the browser's storage: {}", describe(e));
        let have = a.0.get_size().map_err(in_store)? as u64;
        let validator = if have > 0 { self.read(key, &sidecar).await.ok().and_then(|b| String::from_utf8(b).ok()) } else { None };
        let range = (have > 0).then_some((have, None));
        let resp = net::request_with(url, "GET", range, validator.as_deref()).await?;
        let status = resp.status();
        let mut body = net::BodyReader::new(&resp)?;
        let stated_hash =
            net::header(&resp, "x-linked-etag").or_else(|| net::header(&resp, "etag")).and_then(|e| files::sha256_from_etag(&e));
        let (start, total) = match status {
            206 => {
                // Unreadable Content-Range: the answer starts where it was asked to.
                let range = net::header(&resp, "content-range").unwrap_or_default();
                (files::content_range_start(&range).unwrap_or(have), files::content_range_total(&range).or(expected))
            }
            200 => (0, net::header(&resp, "content-length").and_then(|v| v.parse().ok()).or(expected)),
            // Asked for bytes past the end: the file is already whole if the sizes agree (and
            // its hash, where the server states one).
            416 => {
                let total = net::header(&resp, "content-range").and_then(|r| files::content_range_total(&r)).or(expected);
                let digest = hash_stored(&a, have, name)?;
                if total == Some(have) && stated_hash.as_ref().is_none_or(|h| *h == digest) {
                    return Ok(StoredFile { name: name.into(), bytes: have, sha256: Some(digest), complete: true });
                }
                a.0.truncate_with_f64(0.0).map_err(in_store)?;
                return Err(format!("{url}: the stored part did not match the server's file and was discarded; load again").into());
            }
            _ => {
                let answer = net::check_answer(url, &resp, &[]);
                drop((body, a));
                if let Err(absent @ FetchError::Absent { .. }) = answer {
                    self.remove(key, name).await;
                    return Err(absent);
                }
                return Err(format!("downloading {url} failed: HTTP {status}").into());
            }
        };
        if let Err(absent @ FetchError::Absent { .. }) = net::check_answer(url, &resp, &[]) {
            drop((body, a));
            self.remove(key, name).await;
            return Err(absent);
        }
        if let (Some(t), Some(max)) = (total, limit) {
            if t > max {
                drop((body, a));
                self.remove(key, name).await;
                return Err(format!(
                    "{url} is {}; a {name} is never more than {}: this is not a model file",
                    files::human_bytes(t),
                    files::human_bytes(max)
                )
                .into());
            }
        }
        if start > have {
            a.0.truncate_with_f64(0.0).map_err(in_store)?;
            return Err(
                format!("{url}: the server answered from byte {start}, not {have}; the stored part was discarded: load again").into()
            );
        }
        if start != have {
            a.0.truncate_with_f64(start as f64).map_err(in_store)?;
        }
        if start == 0 {
            // A fresh start: remember what identifies this version of the file for a resume.
            let v = net::header(&resp, "etag").or_else(|| net::header(&resp, "last-modified"));
            self.write(key, &sidecar, v.unwrap_or_default().as_bytes()).await?;
        }
        let mut hasher = Sha256::new();
        if start > 0 {
            hash_prefix(&a, start, &mut hasher, name)?;
        }
        let mut pos = start;
        let total_or = |p: u64| total.unwrap_or(p);
        loop {
            let chunk = match body.next().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    let _ = a.0.flush();
                    return Err(format!(
                        "the download of {name} was interrupted at {} of {} ({e}); the part is kept: load again to resume",
                        files::human_bytes(pos),
                        files::human_bytes(total_or(pos))
                    )
                    .into());
                }
            };
            if pos == 0 {
                // A page typed as something else (a fallback served as the path's type).
                let head = chunk.subarray(0, chunk.length().min(64)).to_vec();
                if let Err(absent @ FetchError::Absent { .. }) = net::check_answer(url, &resp, &head) {
                    drop((body, a));
                    self.remove(key, name).await;
                    return Err(absent);
                }
            }
            let end = pos + chunk.length() as u64;
            let cap = [total, limit].into_iter().flatten().min();
            if let Some(cap) = cap.filter(|&c| end > c) {
                drop((body, a));
                self.remove(key, name).await;
                return Err(format!(
                    "{url} sent more than the {} {} (at least {end} bytes); the download was discarded",
                    files::human_bytes(cap),
                    if Some(cap) == total { "it announced" } else { "a model's small file may have" }
                )
                .into());
            }
            hasher.update(chunk.to_vec());
            if let Err(e) = a.0.write_with_js_u8_array_and_options(&chunk, &at(pos)) {
                drop((body, a));
                self.remove(key, name).await;
                return Err(format!(
                    "the browser's storage refused {name} at {} ({}): its quota is probably full. The part was removed; delete stored \
                     models to free space, then load again",
                    files::human_bytes(pos),
                    describe(e)
                )
                .into());
            }
            pos = end;
            progress(pos, total_or(pos));
        }
        a.0.flush().map_err(in_store)?;
        if let Some(t) = total {
            if pos != t {
                return Err(format!("{name}: got {} of {}; load again to resume", files::human_bytes(pos), files::human_bytes(t)).into());
            }
        }
        let digest: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        if let Some(want) = stated_hash {
            if want != digest {
                a.0.truncate_with_f64(0.0).map_err(in_store)?;
                return Err(format!("{name}: SHA-256 {digest} differs from the server's {want}; the download was discarded").into());
            }
        }
        Ok(StoredFile { name: name.into(), bytes: pos, sha256: Some(digest), complete: true })
    }

    /// Removes a file of the model's folder and its validator, if they are there (an absent
    /// file's empty part; nothing to report when they are not).
    pub async fn remove(&self, key: &str, name: &str) {
        self.remove_entry(key, name).await;
        self.remove_entry(key, &format!("{name}{VALIDATOR}")).await;
    }

    async fn remove_entry(&self, key: &str, name: &str) {
        if let Ok(dir) = self.dir(key).await {
            // Not there is as good as removed.
            let _ = await_promise(dir.remove_entry(name)).await;
        }
    }

    /// Replaces a small file of the model's folder.
    async fn write(&self, key: &str, name: &str, bytes: &[u8]) -> Result<(), String> {
        let a = access(&self.dir(key).await?, name).await?;
        let in_store = |e: JsValue| format!("writing {name} to the browser's storage: {}", describe(e));
        a.0.truncate_with_f64(0.0).map_err(in_store)?;
        a.0.write_with_u8_array_and_options(bytes, &at(0)).map_err(in_store)?;
        a.0.flush().map_err(in_store)
    }
}

/// A small file's text, if it is there and readable.
async fn read_text(dir: &FileSystemDirectoryHandle, name: &str) -> Option<String> {
    let file: web_sys::File = await_promise(file_in(dir, name, false).await.ok()?.get_file()).await.ok()?.unchecked_into();
    await_promise(file.text()).await.ok()?.as_string()
}

/// The names in a folder.
async fn entries(dir: &FileSystemDirectoryHandle) -> Result<Vec<String>, String> {
    let it = dir.keys();
    let mut out = Vec::new();
    loop {
        let next = await_promise(it.next().map_err(describe)?).await?;
        if js_sys::Reflect::get(&next, &"done".into()).ok().and_then(|d| d.as_bool()).unwrap_or(true) {
            return Ok(out);
        }
        if let Some(name) = js_sys::Reflect::get(&next, &"value".into()).ok().and_then(|v| v.as_string()) {
            out.push(name);
        }
    }
}

/// Feeds the first `len` stored bytes to the hasher (a resumed download hashes the whole file).
fn hash_prefix(a: &Access, len: u64, hasher: &mut Sha256, name: &str) -> Result<(), String> {
    const CHUNK: u64 = 4 << 20;
    let mut buf = vec![0u8; CHUNK as usize];
    let mut off = 0;
    while off < len {
        let n = CHUNK.min(len - off) as usize;
        let got =
            a.0.read_with_u8_array_and_options(&mut buf[..n], &at(off))
                .map_err(|e| format!("reading {name} in the browser's storage: {}", describe(e)))? as usize;
        if got == 0 {
            return Err(format!("{name} in the browser's storage is shorter than it said; delete it and load again"));
        }
        hasher.update(&buf[..got]);
        off += got as u64;
    }
    Ok(())
}

fn hash_stored(a: &Access, len: u64, name: &str) -> Result<String, String> {
    let mut h = Sha256::new();
    hash_prefix(a, len, &mut h, name)?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
