//! Inspecting and loading models: from a URL (kept in the browser's storage, resumed, checked),
//! or from files the user chose. Weights stream one tensor at a time into GPU buffers,
//! quantised on the way by the model's loader.

use std::path::PathBuf;
use std::rc::Rc;

use llava_lens_model::checkpoint::{RangeReader, StreamedCheckpoint};
use llava_lens_model::preprocess::ImageProcessor;
use llava_lens_model::{Llava, LlavaConfig, LlavaTokenizer, WeightDType};

use super::net::FetchError;
use super::sources::{BlobFiles, HttpFiles};
use super::store::Store;
use super::{Session, gpu, net, post};
use crate::files::{self, CONFIG, INDEX, PREPROCESSOR, Plan, StoredFile, StoredModel, TOKENIZER};
use crate::protocol::{ModelSource, Response};

/// A model's small files and where its weight shards are.
struct Folder {
    name: String,
    config: LlavaConfig,
    tokenizer_json: Vec<u8>,
    processor: ImageProcessor,
    shards: Shards,
}

enum Shards {
    /// Blobs with their sizes (chosen files, or files in storage once downloaded).
    Blobs(BlobFiles),
    /// On a server: URLs, sizes as announced, the storage key, and whether storage works here.
    Remote { urls: Vec<String>, names: Vec<String>, sizes: Vec<u64>, key: String, store: Option<Rc<Store>>, stored: Vec<bool> },
}

impl Shards {
    fn sizes(&self) -> Vec<u64> {
        match self {
            Shards::Blobs(b) => b.blobs.iter().map(|b| b.size() as u64).collect(),
            Shards::Remote { sizes, .. } => sizes.clone(),
        }
    }
    fn download_bytes(&self) -> u64 {
        match self {
            Shards::Blobs(_) => 0,
            Shards::Remote { sizes, stored, store, .. } => {
                if store.is_none() {
                    0
                } else {
                    sizes.iter().zip(stored).filter(|(_, s)| !**s).map(|(b, _)| b).sum()
                }
            }
        }
    }
}

fn stage(s: &str, done: u64, total: u64) {
    post(&Response::Progress { stage: s.into(), done, total });
}

/// The folder's preprocessor_config.json, or the vision tower's usual processor without one.
fn parse_processor(bytes: Option<Vec<u8>>, name: &str, config: &LlavaConfig) -> Result<ImageProcessor, String> {
    let Some(bytes) = bytes else { return ImageProcessor::default_for(config).map_err(|e| e.to_string()) };
    let path = PathBuf::from(format!("{name}/{PREPROCESSOR}"));
    let text = String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8 text", path.display()))?;
    let size = config.vision_tower().map_err(|e| e.to_string())?.image_size;
    ImageProcessor::parse(&text, &path, size).map_err(|e| e.to_string())
}

fn parse_config(bytes: &[u8], name: &str) -> Result<LlavaConfig, String> {
    let text = String::from_utf8(bytes.to_vec()).map_err(|_| format!("{name}/config.json is not UTF-8 text"))?;
    let path = PathBuf::from(format!("{name}/config.json"));
    let config = LlavaConfig::parse(&text, &path).map_err(|e| e.to_string())?;
    if config.vision.is_none() {
        // The page explains images; a plain decoder answers text only (the CLI's --context).
        return Err(format!(
            "{}: a text-only {} checkpoint (no vision tower); the page explains images: use a Llava folder, or the CLI with --context",
            path.display(),
            config.text.kind.model_type()
        ));
    }
    Ok(config)
}

/// A small file of a URL model: from storage when a complete copy is there (no network: a later
/// visit works offline), else downloaded into storage, else fetched. Absent files are
/// [`FetchError::Absent`], so optional ones can be probed.
async fn small_file(store: Option<&Store>, manifest: &mut StoredModel, base: &str, name: &str) -> Result<Vec<u8>, FetchError> {
    let url = format!("{base}{name}");
    let limit = files::small_file_limit(name);
    let Some(store) = store else { return net::fetch_bytes(&url, limit).await };
    if manifest.file(name).is_some_and(|f| f.complete) {
        match store.read(&manifest.key, name).await {
            // An HTML page kept by an earlier version that took a server's fallback page for
            // the file: forget it and ask again.
            Ok(b) if files::looks_like_html(&b) => {}
            Ok(b) => return Ok(b),
            Err(_) => {}
        }
    }
    match store.download(&manifest.key, &url, name, None, Some(limit), &|_, _| {}).await {
        Ok(f) => record(manifest, f),
        Err(e) => {
            if matches!(e, FetchError::Absent { .. }) && manifest.file(name).is_some() {
                manifest.files.retain(|f| f.name != name);
                store.save_manifest(manifest).await?;
            }
            return Err(e);
        }
    }
    store.save_manifest(manifest).await?;
    Ok(store.read(&manifest.key, name).await?)
}

fn record(m: &mut StoredModel, f: StoredFile) {
    match m.files.iter_mut().find(|x| x.name == f.name) {
        Some(x) => *x = f,
        None => m.files.push(f),
    }
}

/// Where the model of `base` is kept and what is kept of it: its key, or the first version's
/// key if only that holds it, and its manifest if one is whole. A folder holding another URL's
/// model under the same key is never written to.
async fn stored_manifest(store: &Store, base: &str) -> Result<(String, Option<StoredModel>), String> {
    let key = files::model_key(base);
    if let Some(m) = store.manifest(&key, None).await {
        if m.url != base {
            return Err(format!(
                "the browser's storage keeps {} under the key of {base}; delete it in the storage panel to load this model",
                m.url
            ));
        }
        return Ok((key, Some(m)));
    }
    let legacy = files::legacy_model_key(base);
    match store.manifest(&legacy, Some(base)).await {
        Some(m) => Ok((legacy, Some(m))),
        None => Ok((key, None)),
    }
}

async fn open_url(url: &str) -> Result<Folder, String> {
    let base = if url.ends_with('/') { url.to_string() } else { format!("{url}/") };
    let store = match Store::open().await {
        Ok(s) => Some(Rc::new(s)),
        Err(e) => {
            web_sys::console::warn_1(&format!("no browser storage ({e}); the model is read from the server each time").into());
            None
        }
    };
    let (key, stored) = match &store {
        Some(s) => stored_manifest(s, &base).await?,
        None => (files::model_key(&base), None),
    };
    let fresh = stored.is_none();
    let mut manifest = stored.unwrap_or(StoredModel { key: key.clone(), url: base.clone(), files: Vec::new(), damaged: false });
    if let (Some(s), true) = (&store, fresh) {
        // Written before anything is downloaded: a folder without a whole manifest is then
        // always a damaged one, never a first download in progress.
        s.save_manifest(&manifest).await?;
    }
    let opened = open_url_files(store.clone(), &base, key.clone(), &mut manifest).await;
    if let (Err(_), Some(s)) = (&opened, &store) {
        // Nothing of this model was ever kept (a wrong address, a server that is down): leave
        // no empty entry behind in the storage panel.
        if s.manifest(&key, Some(&base)).await.is_some_and(|m| m.files.is_empty()) {
            let _ = s.delete(&key).await;
        }
    }
    opened
}

/// [`open_url`]'s reads: the small files (from storage or the server) and the shards' sizes.
async fn open_url_files(store: Option<Rc<Store>>, base: &str, key: String, manifest: &mut StoredModel) -> Result<Folder, String> {
    let base = base.to_string();
    let s = store.as_deref();
    let config = parse_config(&small_file(s, manifest, &base, CONFIG).await?, &base)?;
    let tokenizer_json = small_file(s, manifest, &base, TOKENIZER).await?;
    let weights_stored = manifest.files.iter().any(|f| f.complete && f.name.ends_with(".safetensors"));
    let processor = match small_file(s, manifest, &base, PREPROCESSOR).await {
        Ok(b) => Some(b),
        Err(FetchError::Absent { .. }) => None,
        // Offline with the weights kept: a folder stored before this file was asked for.
        Err(FetchError::Failed(e)) if weights_stored => {
            web_sys::console::warn_1(&format!("{base}{PREPROCESSOR}: {e}; using the vision tower's usual processor").into());
            None
        }
        Err(e) => return Err(e.into()),
    };
    let processor = parse_processor(processor, &base, &config)?;
    // A sharded folder has an index; a single-file one has none (the server answers 404, or an
    // HTML page where it falls back to one: files::file_answer). A stored single-file model
    // needs no look for an index (and none offline).
    let single_stored = manifest.file(files::SINGLE).is_some_and(|f| f.complete);
    let index = if single_stored {
        None
    } else {
        match small_file(s, manifest, &base, INDEX).await {
            Ok(b) => Some(String::from_utf8(b).map_err(|_| format!("{base}{INDEX} is not UTF-8 text"))?),
            Err(FetchError::Absent { .. }) => None,
            Err(e) => return Err(e.into()),
        }
    };
    let names = match &index {
        Some(text) => llava_lens_model::checkpoint::header::shard_files(std::path::Path::new(&format!("{base}{INDEX}")), text)
            .map_err(|e| e.to_string())?,
        None => vec![files::SINGLE.to_string()],
    };
    let mut sizes = Vec::new();
    let mut stored = Vec::new();
    for n in &names {
        // A stored file is trusted only at the size its manifest recorded (a file cut short
        // behind the manifest's back is downloaded again, resuming from what is there).
        let whole = match (manifest.file(n), &store) {
            (Some(f), Some(st)) if f.complete => st.file(&key, n).await.is_ok_and(|b| b.size() as u64 == f.bytes),
            _ => false,
        };
        match manifest.file(n) {
            Some(f) if whole => {
                sizes.push(f.bytes);
                stored.push(true);
            }
            _ => {
                let size = match net::content_length(&format!("{base}{n}")).await {
                    Ok(Some(size)) => size,
                    Ok(None) => return Err(format!("{base}{n}: the server does not say its size")),
                    Err(FetchError::Absent { why, .. }) if index.is_none() => {
                        return Err(format!(
                            "{base} holds neither {INDEX} nor {n} (asked for {n}, the server answered {why}); is this the address of an HF-format model folder?"
                        ));
                    }
                    Err(e) => return Err(e.into()),
                };
                // Planned, not yet downloaded: the storage panel lists it as partial.
                if manifest.file(n).is_none_or(|f| f.complete) {
                    record(manifest, StoredFile { name: n.clone(), bytes: size, sha256: None, complete: false });
                }
                sizes.push(size);
                stored.push(false);
            }
        }
    }
    if let Some(s) = &store {
        s.save_manifest(manifest).await?;
    }
    let urls = names.iter().map(|n| format!("{base}{n}")).collect();
    Ok(Folder { name: base, config, tokenizer_json, processor, shards: Shards::Remote { urls, names, sizes, key, store, stored } })
}

async fn open_files(list: &[web_sys::File]) -> Result<Folder, String> {
    let names: Vec<String> = list.iter().map(|f| f.name()).collect();
    let find = |n: &str| list.iter().find(|f| f.name() == n);
    let all = names.join(", ");
    let read = |n: &'static str| {
        let f = find(n).cloned().ok_or_else(|| format!("{n} is not among the chosen files ({all})"));
        async move {
            let buf = net::await_promise(f?.array_buffer()).await?;
            Ok::<Vec<u8>, String>(js_sys::Uint8Array::new(&buf).to_vec())
        }
    };
    // A folder picked whole gives its files paths "folder/name" (not in web-sys' File).
    let folder = list
        .first()
        .and_then(|f| js_sys::Reflect::get(f, &"webkitRelativePath".into()).ok()?.as_string())
        .and_then(|p| p.split('/').next().map(str::to_string))
        .filter(|s| !s.is_empty());
    let name = folder.unwrap_or_else(|| "chosen files".into());
    let config = parse_config(&read(CONFIG).await?, &name)?;
    let tokenizer_json = read(TOKENIZER).await?;
    let processor = match find(PREPROCESSOR) {
        Some(_) => Some(read(PREPROCESSOR).await?),
        None => None,
    };
    let processor = parse_processor(processor, &name, &config)?;
    let index = match find(INDEX) {
        Some(_) => Some(String::from_utf8(read(INDEX).await?).map_err(|_| format!("{INDEX} is not UTF-8 text"))?),
        None => None,
    };
    let shards = files::shard_names(&names, index.as_deref())?;
    let blobs = shards
        .iter()
        .map(|n| find(n).map(|f| f.clone().into()).ok_or_else(|| format!("{n} is not among the chosen files ({all})")))
        .collect::<Result<_, _>>()?;
    Ok(Folder { name, config, tokenizer_json, processor, shards: Shards::Blobs(BlobFiles { names: shards, blobs }) })
}

async fn open(source: &ModelSource, files: &[web_sys::File]) -> Result<Folder, String> {
    match source {
        ModelSource::Url { url } => open_url(url).await,
        ModelSource::Files => open_files(files).await,
    }
}

async fn plan(folder: &Folder, dtype: WeightDType) -> Result<Plan, String> {
    let ctx = gpu().await?;
    let limits = ctx.device.limits();
    let max_buffer = limits.max_buffer_size.min(limits.max_storage_buffer_binding_size);
    let (weight_bytes, largest_buffer) = Llava::weight_bytes_estimate(&folder.config, dtype);
    let seq = folder.config.image_tokens() + 64;
    Ok(Plan {
        model: folder.name.clone(),
        dtype: dtype.name().into(),
        download_bytes: folder.shards.download_bytes(),
        file_bytes: folder.shards.sizes().iter().sum(),
        weight_bytes,
        working_bytes: Llava::working_bytes_estimate(&folder.config, seq),
        largest_buffer,
        max_buffer,
        adapter: ctx.describe(),
        problem: files::fit_problem(largest_buffer, max_buffer, dtype.name()),
    })
}

pub async fn inspect(source: &ModelSource, dtype: WeightDType, files: &[web_sys::File]) -> Result<(), String> {
    let folder = open(source, files).await?;
    post(&Response::Plan(plan(&folder, dtype).await?));
    Ok(())
}

/// Downloads what storage lacks, then reads the shards from storage (or, without storage, by
/// range requests from the server).
async fn readable(shards: Shards) -> Result<(Box<dyn RangeReader>, Vec<(PathBuf, u64)>), String> {
    match shards {
        Shards::Blobs(b) => {
            let files = b.names.iter().zip(&b.blobs).map(|(n, b)| (PathBuf::from(n), b.size() as u64)).collect();
            Ok((Box::new(b), files))
        }
        Shards::Remote { urls, sizes, store: None, .. } => {
            let files = urls.iter().cloned().map(PathBuf::from).zip(sizes).collect();
            Ok((Box::new(HttpFiles { urls }), files))
        }
        Shards::Remote { urls, names, sizes, key, store: Some(store), stored } => {
            let total: u64 = sizes.iter().zip(&stored).filter(|(_, s)| !**s).map(|(b, _)| b).sum();
            let mut before = 0u64;
            for (i, name) in names.iter().enumerate() {
                if stored[i] {
                    continue;
                }
                let f = store
                    .download(&key, &urls[i], name, Some(sizes[i]), None, &|pos, _| stage("download", before + pos, total))
                    .await
                    .map_err(String::from)?;
                if f.bytes != sizes[i] {
                    return Err(format!("{}: downloaded {} bytes, the server announced {}", urls[i], f.bytes, sizes[i]));
                }
                before += f.bytes;
                let mut m = store.manifest(&key, None).await.ok_or("the storage lost this model's manifest")?;
                record(&mut m, f);
                store.save_manifest(&m).await?;
            }
            let mut blobs = Vec::new();
            for n in &names {
                blobs.push(store.file(&key, n).await?.into());
            }
            let files = names.iter().zip(&sizes).map(|(n, s)| (PathBuf::from(format!("{key}/{n}")), *s)).collect();
            Ok((Box::new(BlobFiles { names: names.iter().map(|n| format!("{key}/{n}")).collect(), blobs }), files))
        }
    }
}

pub async fn load(source: &ModelSource, dtype: WeightDType, files: &[web_sys::File]) -> Result<Session, String> {
    let folder = open(source, files).await?;
    let p = plan(&folder, dtype).await?;
    if let Some(problem) = &p.problem {
        return Err(format!("{} cannot run here: {problem}", folder.name));
    }
    let tokenizer = LlavaTokenizer::from_bytes(
        &folder.tokenizer_json,
        &PathBuf::from(format!("{}/tokenizer.json", folder.name)),
        folder.config.image_token_index,
    )
    .map_err(|e| e.to_string())?;
    let (reader, shard_files) = readable(folder.shards).await?;
    let ckpt = StreamedCheckpoint::open(reader, &shard_files).await.map_err(|e| e.to_string())?;
    let ctx = gpu().await?;
    let total = Llava::tensor_count(&folder.config) as u64;
    let done = std::cell::Cell::new(0u64);
    let tick = |_: &str| {
        done.set(done.get() + 1);
        stage("upload", done.get(), total);
    };
    // WebGPU reports running out of memory asynchronously: a scope around the upload catches it.
    let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let loaded = Llava::load(&ctx, &ckpt, &folder.config, dtype, Some(&tick)).await;
    if let Some(e) = scope.pop().await {
        return Err(format!(
            "the GPU ran out of memory loading {} ({} of weights in {}): {e}. Try q4 weights, or close other GPU-heavy tabs",
            folder.name,
            files::human_bytes(p.weight_bytes),
            dtype.name()
        ));
    }
    let model = loaded.map_err(|e| e.to_string())?;
    Ok(Session { name: folder.name, ctx, model, tokenizer, processor: folder.processor })
}
