//! Messages in a visitor's words. Most of the page's errors already say what is wrong with a
//! named file and what to do; the few that come from the GPU stack or the browser carry
//! internal names (wgpu backends, driver advice), so they get a plain sentence first and keep
//! their text behind a "details" toggle for bug reports.

/// What the page tells the visitor when something went wrong: a sentence in their words, and
/// the technical detail (for a bug report) behind a toggle.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub text: String,
    pub detail: Option<String>,
}

/// The visitor's sentence for a raw message, the raw text kept as detail when it is rewritten.
pub fn notice(raw: &str) -> Notice {
    let plain = |text: &str| Notice { text: text.to_string(), detail: Some(raw.to_string()) };
    if raw.contains("no GPU adapter") || raw.contains("no WebGPU adapter") {
        plain(
            "This browser gives the page no GPU (WebGPU is off or missing), so the model cannot run here. \
             Open the page in Chrome or Edge 113 or newer, or in Safari or Firefox with WebGPU turned on. \
             Shared explanations still open without a GPU.",
        )
    } else if raw.starts_with("the worker stopped") {
        plain("The part of the page that runs the model stopped. Reload the page to start it again; your shared links still work.")
    } else if raw.contains("refused a device") {
        plain("The browser refused the page a GPU device. Close other tabs that use the GPU and reload, or try another browser.")
    } else if raw.starts_with("the GPU ran out of memory (") {
        plain(
            "The GPU ran out of memory. Load the model with q4 weights (Model panel), pick a smaller model, or close other tabs that use the GPU.",
        )
    } else if raw.starts_with("the GPU reported an error: ") {
        plain(
            "The GPU refused a step of the computation: a bug in llava-lens or in this browser's WebGPU. Reloading may help; please report it with the details below.",
        )
    } else {
        Notice { text: raw.to_string(), detail: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_stack_messages_become_plain_words_with_the_detail_kept() {
        let raw = "no GPU adapter found (Backends(BROWSER_WEBGPU)). This browser offers no WebGPU adapter ... Detail: vulkan support not compiled in";
        let n = notice(raw);
        assert!(n.text.contains("no GPU") && !n.text.contains("Backends") && !n.text.contains("vulkan"), "{}", n.text);
        assert_eq!(n.detail.as_deref(), Some(raw));
        for raw in [
            "the adapter \"SwiftShader\" refused a device: limits exceeded",
            "the GPU ran out of memory (Out of Memory)",
            "the GPU reported an error: Validation Error\n\nCaused by:\n  In a CommandEncoder",
        ] {
            let n = notice(raw);
            assert!(n.detail.as_deref() == Some(raw) && !n.text.contains("Validation") && !n.text.contains("adapter"), "{raw}: {}", n.text);
        }
        let named = "broken.png is not an image this page can decode";
        assert_eq!(notice(named), Notice { text: named.into(), detail: None }, "messages already in plain words stay as they are");
    }
}
