//! Fetch from the worker: whole small files, sizes, byte ranges, and bodies as streams.

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, RequestInit, Response};

use super::scope;
use crate::files::{self, FileAnswer};

fn js_err(e: JsValue) -> String {
    e.as_string().or_else(|| e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message()))).unwrap_or_else(|| format!("{e:?}"))
}

/// A fetch with optional method and `Range` header; network failures name the URL.
pub async fn request(url: &str, method: &str, range: Option<(u64, Option<u64>)>) -> Result<Response, String> {
    request_with(url, method, range, None).await
}

/// [`request`] with an `If-Range` validator: the server sends the range only if the file is
/// still the version the validator names, else the whole file (200).
pub async fn request_with(url: &str, method: &str, range: Option<(u64, Option<u64>)>, if_range: Option<&str>) -> Result<Response, String> {
    let init = RequestInit::new();
    init.set_method(method);
    if let Some((start, end)) = range {
        let headers = Headers::new().map_err(js_err)?;
        let value = match end {
            Some(end) if end > start => format!("bytes={start}-{}", end - 1),
            Some(_) => return Err(format!("{url}: an empty byte range {start}.. was asked for")),
            None => format!("bytes={start}-"),
        };
        headers.set("Range", &value).map_err(js_err)?;
        if let Some(v) = if_range.filter(|v| !v.is_empty()) {
            headers.set("If-Range", v).map_err(js_err)?;
        }
        init.set_headers(&headers);
    }
    let resp = JsFuture::from(scope().fetch_with_str_and_init(url, &init))
        .await
        .map_err(|e| format!("could not reach {url} ({}); check the address and that the server allows this page (CORS)", js_err(e)))?;
    Ok(resp.unchecked_into())
}

/// Why a request for a file brought no file.
#[derive(Debug)]
pub enum FetchError {
    /// The server says the file is not there ([`files::file_answer`]): a folder without it may
    /// still be a model (another layout), so callers that probe optional files look for this.
    Absent { url: String, why: String },
    /// Anything else (network, HTTP errors, storage), in words.
    Failed(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Absent { url, why } => write!(f, "{url} is not there: the server answered {why}"),
            FetchError::Failed(e) => f.write_str(e),
        }
    }
}

impl From<String> for FetchError {
    fn from(e: String) -> Self {
        FetchError::Failed(e)
    }
}

impl From<FetchError> for String {
    fn from(e: FetchError) -> Self {
        e.to_string()
    }
}

/// Sorts an answer by [`files::file_answer`]: Ok for a file, else why not.
pub fn check_answer(url: &str, resp: &Response, first_bytes: &[u8]) -> Result<(), FetchError> {
    match files::file_answer(resp.status(), header(resp, "content-type").as_deref(), first_bytes) {
        FileAnswer::Present => Ok(()),
        FileAnswer::Absent(why) => Err(FetchError::Absent { url: url.into(), why }),
        FileAnswer::Failed(status) => Err(FetchError::Failed(format!("fetching {url} failed: HTTP {status}"))),
    }
}

/// A whole small file, of at most `limit` bytes: a larger announced size is refused before the
/// body is read, and the body is read no further than the limit.
pub async fn fetch_bytes(url: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
    let resp = request(url, "GET", None).await?;
    check_answer(url, &resp, &[])?;
    let too_big = |n: u64| {
        FetchError::Failed(format!(
            "{url} is {}; a model's small file is never more than {}",
            files::human_bytes(n),
            files::human_bytes(limit)
        ))
    };
    if let Some(n) = header(&resp, "content-length").and_then(|v| v.parse::<u64>().ok()).filter(|&n| n > limit) {
        return Err(too_big(n));
    }
    let mut body = BodyReader::new(&resp)?;
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await? {
        if bytes.len() as u64 + chunk.length() as u64 > limit {
            return Err(too_big(bytes.len() as u64 + chunk.length() as u64));
        }
        bytes.extend(chunk.to_vec());
    }
    check_answer(url, &resp, &bytes)?;
    Ok(bytes)
}

/// The size a server announces for `url`: HEAD's Content-Length (redirects followed), else the
/// total of a one-byte range request's Content-Range; None if it says neither.
pub async fn content_length(url: &str) -> Result<Option<u64>, FetchError> {
    // Some servers refuse HEAD (405; pre-signed GET-only links answer 403): ask for one byte then.
    let head = request(url, "HEAD", None).await?;
    if let Err(absent @ FetchError::Absent { .. }) = check_answer(url, &head, &[]) {
        return Err(absent);
    }
    if head.ok() {
        if let Some(n) = header(&head, "content-length").and_then(|v| v.parse().ok()) {
            return Ok(Some(n));
        }
    }
    let resp = request(url, "GET", Some((0, Some(1)))).await?;
    if let Err(absent @ FetchError::Absent { .. }) = check_answer(url, &resp, &[]) {
        return Err(absent);
    }
    let total = header(&resp, "content-range").and_then(|r| files::content_range_total(&r));
    let ok = resp.status() == 206;
    // A server that ignores the range would stream the whole file: stop it.
    drop(BodyReader::new(&resp));
    match (ok, total) {
        (true, t) => Ok(t),
        (false, _) if head.ok() => Ok(None),
        (false, _) => Err(FetchError::Failed(format!("{url}: HTTP {}", head.status()))),
    }
}

pub fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers().get(name).ok().flatten()
}

/// Reads a body chunk by chunk (None at the end); a dropped connection is an error. Dropping
/// it cancels the rest of the body, so an early return does not leave a download running.
pub struct BodyReader {
    reader: web_sys::ReadableStreamDefaultReader,
}

impl Drop for BodyReader {
    fn drop(&mut self) {
        // A finished stream ignores the cancel; the promise has nothing left to report.
        let _ = self.reader.cancel();
    }
}

impl BodyReader {
    pub fn new(resp: &Response) -> Result<Self, String> {
        let body = resp.body().ok_or("the response has no body")?;
        Ok(BodyReader { reader: body.get_reader().unchecked_into() })
    }

    pub async fn next(&mut self) -> Result<Option<js_sys::Uint8Array>, String> {
        let r = JsFuture::from(self.reader.read()).await.map_err(js_err)?;
        let done = js_sys::Reflect::get(&r, &"done".into()).map_err(js_err)?.as_bool().unwrap_or(true);
        if done {
            return Ok(None);
        }
        Ok(Some(js_sys::Reflect::get(&r, &"value".into()).map_err(js_err)?.unchecked_into()))
    }
}

pub async fn await_promise(p: js_sys::Promise) -> Result<JsValue, String> {
    JsFuture::from(p).await.map_err(js_err)
}

pub fn describe(e: JsValue) -> String {
    js_err(e)
}
