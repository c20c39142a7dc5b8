//! Browser plumbing the page uses: the worker, downloads, URLs, files, scrolling.

use std::cell::RefCell;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::Worker;

use crate::protocol::Request;

thread_local! {
    pub static WORKER: RefCell<Option<Worker>> = const { RefCell::new(None) };
    /// Model files the user chose or dropped (File objects are not thread-safe signal values).
    pub static CHOSEN: RefCell<Vec<web_sys::File>> = const { RefCell::new(Vec::new()) };
}

pub fn send(req: &Request) {
    WORKER.with(|w| {
        if let Some(w) = w.borrow().as_ref() {
            let _ = w.post_message(&JsValue::from_str(&req.to_json()));
        }
    });
}

/// A request with the chosen model files beside its JSON.
pub fn send_with_files(req: &Request) {
    let msg = js_sys::Array::of1(&JsValue::from_str(&req.to_json()));
    CHOSEN.with(|c| {
        for f in c.borrow().iter() {
            msg.push(f);
        }
    });
    WORKER.with(|w| {
        if let Some(w) = w.borrow().as_ref() {
            let _ = w.post_message(&msg);
        }
    });
}

/// The worker script is wasm-bindgen's no-modules output (Trunk's worker pipeline); a small
/// classic script boots it from the page's own directory.
pub fn spawn_worker() -> Result<Worker, String> {
    let href = web_sys::window().ok_or("no window")?.location().href().map_err(|_| "no location")?;
    let base = href.split(['#', '?']).next().unwrap_or("").rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or_default();
    let boot =
        format!(r#"importScripts("{base}/llava-lens-worker.js");wasm_bindgen({{module_or_path:"{base}/llava-lens-worker_bg.wasm"}});"#);
    let parts = js_sys::Array::of1(&JsValue::from_str(&boot));
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type("text/javascript");
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &opts).map_err(|e| format!("{e:?}"))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|e| format!("{e:?}"))?;
    Worker::new(&url).map_err(|e| format!("could not start the worker: {e:?}"))
}

/// Saves `url` under `name` through a temporary link (the browser's download).
pub fn download_url(url: &str, name: &str) -> Result<(), String> {
    let doc = web_sys::window().and_then(|w| w.document()).ok_or("no document")?;
    let a: web_sys::HtmlAnchorElement = doc.create_element("a").map_err(|e| format!("{e:?}"))?.unchecked_into();
    a.set_href(url);
    a.set_download(name);
    a.click();
    Ok(())
}

/// Saves `text` as a file: a Blob URL, downloaded, then released.
pub fn download_text(text: &str, name: &str, mime: &str) -> Result<(), String> {
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type(mime);
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &opts).map_err(|e| format!("{e:?}"))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|e| format!("{e:?}"))?;
    // Not revoked: revoking right after the click can cancel the download, and one small Blob
    // per click is cheap.
    download_url(&url, name)
}

/// `relative` resolved against the page's address.
pub fn absolute_url(relative: &str) -> Result<String, String> {
    let href = web_sys::window().ok_or("no window")?.location().href().map_err(|_| "the page has no address")?;
    web_sys::Url::new_with_base(relative, &href).map(|u| u.href()).map_err(|_| format!("{relative:?} is not a URL relative to {href}"))
}

/// A query parameter of the page's address (`?embed=1&model=...`).
pub fn query_param(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    web_sys::UrlSearchParams::new_with_str(&search).ok()?.get(name)
}

/// The origin (scheme, host, port) of an absolute URL.
pub fn origin_of(url: &str) -> Option<String> {
    web_sys::Url::new(url).ok().map(|u| u.origin())
}

/// This page's origin.
pub fn page_origin() -> Option<String> {
    web_sys::window()?.location().origin().ok()
}

pub fn data_url(png: &[u8]) -> String {
    format!("data:image/png;base64,{}", STANDARD.encode(png))
}

/// The bytes of a file the user chose, dropped or pasted.
pub async fn read_file(file: &web_sys::File) -> Result<Vec<u8>, String> {
    let buf =
        wasm_bindgen_futures::JsFuture::from(file.array_buffer()).await.map_err(|e| format!("could not read {}: {e:?}", file.name()))?;
    Ok(js_sys::Uint8Array::new(&buf).to_vec())
}

/// The files of a drop: dropped files, and the files directly inside dropped folders (an HF
/// model folder is flat). The entries must be taken while the drop event runs; reading them
/// goes through callbacks, each wrapped in a promise (no JavaScript is compiled at run time:
/// the page's Content-Security-Policy forbids it).
pub fn dropped_files(dt: &web_sys::DataTransfer) -> impl Future<Output = Vec<web_sys::File>> + 'static {
    // Taken now, while the event runs; read later.
    let plain = files_of(dt.files());
    let items = dt.items();
    let entries: Vec<web_sys::FileSystemEntry> =
        (0..items.length()).filter_map(|i| items.get(i)?.webkit_get_as_entry().ok().flatten()).collect();
    async move {
        let mut found = Vec::new();
        for e in entries {
            if e.is_file() {
                found.extend(entry_file(e.unchecked_ref()).await);
            } else if e.is_directory() {
                let reader = e.unchecked_ref::<web_sys::FileSystemDirectoryEntry>().create_reader();
                // readEntries gives a batch per call, an empty one at the end.
                while let Some(batch) = read_batch(&reader).await.filter(|b| b.length() > 0) {
                    for inner in batch.iter().filter_map(|v| v.dyn_into::<web_sys::FileSystemEntry>().ok()) {
                        if inner.is_file() {
                            found.extend(entry_file(inner.unchecked_ref()).await);
                        }
                    }
                }
            }
        }
        if found.is_empty() { plain } else { found }
    }
}

/// The `File` of a file entry (None if the browser refuses it).
async fn entry_file(e: &web_sys::FileSystemFileEntry) -> Option<web_sys::File> {
    let p = js_sys::Promise::new(&mut |ok, no| e.file_with_callback_and_callback(&ok, &no));
    wasm_bindgen_futures::JsFuture::from(p).await.ok()?.dyn_into().ok()
}

/// One batch of a folder's entries (None if the browser refuses to read it).
async fn read_batch(r: &web_sys::FileSystemDirectoryReader) -> Option<js_sys::Array> {
    let p = js_sys::Promise::new(&mut |ok, no| {
        if let Err(e) = r.read_entries_with_callback_and_callback(&ok, &no) {
            let _ = no.call1(&JsValue::NULL, &e);
        }
    });
    wasm_bindgen_futures::JsFuture::from(p).await.ok().map(|v| js_sys::Array::from(&v))
}

pub fn files_of(list: Option<web_sys::FileList>) -> Vec<web_sys::File> {
    list.map(|l| (0..l.length()).filter_map(|i| l.get(i)).collect()).unwrap_or_default()
}

/// Brings the element with `id` into view when part of it is off screen (the result after a
/// run, on a phone where it lies below the question), without moving keyboard focus.
pub fn reveal(id: &str) {
    let Some(win) = web_sys::window() else { return };
    let Some(el) = win.document().and_then(|d| d.get_element_by_id(id)) else { return };
    let r = el.get_bounding_client_rect();
    let height = win.inner_height().ok().and_then(|h| h.as_f64()).unwrap_or(0.0);
    if r.top() < 0.0 || r.bottom() > height {
        let opts = web_sys::ScrollIntoViewOptions::new();
        // Instant: the result is what the visitor waits for.
        opts.set_behavior(web_sys::ScrollBehavior::Instant);
        opts.set_block(web_sys::ScrollLogicalPosition::Start);
        el.scroll_into_view_with_scroll_into_view_options(&opts);
    }
}

/// This page's address without `embed=1`: where an embedded view links back to.
pub fn full_page_url() -> String {
    let Some(loc) = web_sys::window().map(|w| w.location()) else { return String::new() };
    let (path, hash) = (loc.pathname().unwrap_or_default(), loc.hash().unwrap_or_default());
    let query = loc.search().unwrap_or_default();
    let kept = web_sys::UrlSearchParams::new_with_str(&query).ok().map(|p| {
        p.delete("embed");
        p.to_string().as_string().unwrap_or_default()
    });
    match kept.filter(|k| !k.is_empty()) {
        Some(k) => format!("{path}?{k}{hash}"),
        None => format!("{path}{hash}"),
    }
}
