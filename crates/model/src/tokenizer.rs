//! The tokenizer a Llava checkpoint ships, and its prompt.
//!
//! Two lineages: LLaMA's SentencePiece vocabulary (llava-1.5, bakLLaVA; "▁" marks a word's
//! start, `<s>` opens every prompt) and Qwen2's byte-level BPE (llava-interleave; "Ġ" marks a
//! space, no start token, ChatML turns). `tokenizer.json` files from the LLaMA lineage lack
//! llava-hf's two added tokens; they are added here as special tokens when missing (`<image>`,
//! then `<pad>`), as llava-hf did, and `<image>` must then have the id the model config names.

use std::path::{Path, PathBuf};

use tokenizers::{AddedToken, Tokenizer};

use crate::ModelError;

pub const IMAGE_TOKEN: &str = "<image>";
pub const PAD_TOKEN: &str = "<pad>";
/// ChatML's turn markers (Qwen's chat models).
const IM_START: &str = "<|im_start|>";
const IM_END: &str = "<|im_end|>";

/// How a question becomes a prompt: the template of the checkpoint's model card, chosen by the
/// vocabulary (a tokenizer with ChatML's turn markers is a ChatML model).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptTemplate {
    /// `USER: <image>\n{question}\nASSISTANT: {prefix}`: llava-1.5's conversation template as
    /// the paper's authors used it (and bakLLaVA's model card).
    Llava15,
    /// `<|im_start|>user <image>\n{question}<|im_end|><|im_start|>assistant\n{prefix}`: what
    /// llava-interleave's chat_template.json renders for one user turn with an image before the
    /// text and `add_generation_prompt`, the answer prefix then continuing the assistant turn.
    ChatMl,
}

impl PromptTemplate {
    pub fn name(self) -> &'static str {
        match self {
            PromptTemplate::Llava15 => "llava-1.5",
            PromptTemplate::ChatMl => "chatml",
        }
    }

    /// The prompt text (the question, context and prefix already trimmed and checked). A text
    /// context goes on the line before the question, as the text of the same user turn.
    pub fn render(self, parts: PromptParts<'_>, question: &str, prefix: &str) -> String {
        let text = if parts.context.is_empty() { question.to_string() } else { format!("{}\n{question}", parts.context) };
        let image = if parts.image { IMAGE_TOKEN } else { "" };
        match self {
            PromptTemplate::Llava15 => {
                let user = if parts.image { format!("{image}\n{text}") } else { text };
                if prefix.is_empty() { format!("USER: {user}\nASSISTANT:") } else { format!("USER: {user}\nASSISTANT: {prefix}") }
            }
            PromptTemplate::ChatMl => format!("{IM_START}user {image}\n{text}{IM_END}{IM_START}assistant\n{prefix}"),
        }
    }
}

/// A tokenised prompt and where the image goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// Token ids; with an image, exactly one image token, which the model replaces by the image
    /// features.
    pub ids: Vec<u32>,
    /// Index of the image token in `ids` (5 for the paper's template); None for a text-only
    /// prompt (the paper's "TQA": the question answered from a text context).
    pub image_offset: Option<usize>,
}

impl Prompt {
    pub fn has_image(&self) -> bool {
        self.image_offset.is_some()
    }
}

/// What a prompt holds besides the question: the image (its token), a text context, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptParts<'a> {
    pub image: bool,
    /// Text the question is about, put before it (the paper's text-context condition).
    pub context: &'a str,
}

#[derive(Debug)]
pub struct LlavaTokenizer {
    inner: Tokenizer,
    path: PathBuf,
    /// The `<image>` token's id; None for a text-only model's tokenizer.
    pub image_token: Option<u32>,
    pub bos: Option<u32>,
    /// The token that ends an answer: `</s>`, or ChatML's `<|im_end|>`.
    pub eos: Option<u32>,
    pub template: PromptTemplate,
}

impl LlavaTokenizer {
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(path: &Path, image_token_index: Option<u32>) -> Result<Self, ModelError> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        Self::from_bytes(&bytes, path, image_token_index)
    }

    /// `json` is the tokenizer.json text; `path` only names it in errors. `image_token_index` is
    /// the config's (None for a plain decoder checkpoint: nothing is added then).
    pub fn from_bytes(json: &[u8], path: &Path, image_token_index: Option<u32>) -> Result<Self, ModelError> {
        let err = |detail: String| ModelError::Tokenizer { path: path.to_path_buf(), detail };
        // tokenizers 0.23 panics on some damaged files instead of returning an error (its
        // decoder's deserializer unwraps any JSON error: decoders/mod.rs, "Helper"), and a panic
        // kills the page's worker (wasm32 aborts on panic). The whole document is checked here
        // first, strings decoded (bad UTF-8 and lone surrogates inside a string are JSON errors
        // too: fuzzing found one), which is all that unwrap needs; natively any other panic
        // inside the crate's parser is caught at this boundary as well.
        serde_json::from_slice::<JsonChecked>(json).map_err(|e| err(format!("not valid JSON: {e}")))?;
        // Its template post-processor looks up each special token of the template when encoding
        // and panics on one the file does not define (fuzzing found it): checked here instead.
        // Only that field is kept: a 7 MB vocabulary is not built into a second tree.
        #[derive(serde::Deserialize)]
        struct PostProcessorOnly {
            #[serde(default)]
            post_processor: Option<serde_json::Value>,
        }
        if let Ok(PostProcessorOnly { post_processor: Some(post) }) = serde_json::from_slice(json) {
            check_post_processor(&post).map_err(|e| err(format!("post_processor: {e}")))?;
        }
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Tokenizer::from_bytes(json)))
            .map_err(|_| err("the tokenizers crate failed on this file (it panicked); it is not a valid tokenizer.json".into()))?;
        let mut inner = parsed.map_err(|e| err(format!("not a tokenizers JSON file: {e}")))?;
        let image_token = match image_token_index {
            Some(want) => {
                for token in [IMAGE_TOKEN, PAD_TOKEN] {
                    if inner.token_to_id(token).is_none() {
                        inner.add_special_tokens([AddedToken::from(token, true)]).map_err(|e| err(format!("adding {token}: {e}")))?;
                    }
                }
                let image_token = inner.token_to_id(IMAGE_TOKEN).unwrap_or(u32::MAX);
                if image_token != want {
                    return Err(err(format!("{IMAGE_TOKEN} has id {image_token} but config.json's image_token_index is {want}")));
                }
                Some(image_token)
            }
            None => None,
        };
        let bos = inner.token_to_id("<s>");
        let template = if inner.token_to_id(IM_START).is_some() && inner.token_to_id(IM_END).is_some() {
            PromptTemplate::ChatMl
        } else {
            PromptTemplate::Llava15
        };
        let eos = match template {
            PromptTemplate::ChatMl => inner.token_to_id(IM_END),
            PromptTemplate::Llava15 => inner.token_to_id("</s>"),
        };
        Ok(LlavaTokenizer { inner, path: path.to_path_buf(), image_token, bos, eos, template })
    }

    /// Ids of `text` with the tokenizer's special tokens (a leading `<s>` for LLaMA).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| ModelError::Tokenizer { path: self.path.clone(), detail: format!("encoding {text:?}: {e}") })?;
        Ok(enc.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String, ModelError> {
        self.inner
            .decode(ids, true)
            .map_err(|e| ModelError::Tokenizer { path: self.path.clone(), detail: format!("decoding {ids:?}: {e}") })
    }

    /// The piece of one token, as stored (e.g. "▁brown", or "Ġbrown" in a byte-level vocabulary).
    pub fn token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn token_id(&self, piece: &str) -> Option<u32> {
        self.inner.token_to_id(piece)
    }

    /// A token the user names, by id or text: "17354"; "brown" (the word-initial piece
    /// "▁brown" or "Ġbrown" first, as answers after "... is" are tokenised, then the piece
    /// "brown"); or any text that encodes to exactly one token. The CLI's --target/--contrast
    /// and the page's fields both resolve through here.
    pub fn resolve_token(&self, text: &str) -> Result<u32, ModelError> {
        let text = text.trim();
        if let Ok(id) = text.parse::<u32>() {
            return Ok(id);
        }
        for piece in [format!("▁{text}"), format!("Ġ{text}"), text.to_string()] {
            if let Some(id) = self.token_id(&piece) {
                return Ok(id);
            }
        }
        let ids: Vec<u32> = self.encode(text)?.into_iter().filter(|&i| Some(i) != self.bos).collect();
        match ids.as_slice() {
            [one] => Ok(*one),
            _ => Err(ModelError::Prompt(format!("{text:?} is {} tokens ({ids:?}); give a single token's text or id", ids.len()))),
        }
    }

    /// The words of `text` the vocabulary has no whole piece for, each with the pieces it is read
    /// as: a model trained on a small vocabulary (the demo model's) has never seen such a word,
    /// so the page warns that its answer to a question naming it is a guess. Words are runs of
    /// letters; a word counts as known when its word-initial piece (or the bare piece) exists,
    /// case as typed.
    pub fn split_words(&self, text: &str) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for word in text.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()) {
            let known = [format!("▁{word}"), format!("Ġ{word}"), word.to_string()].iter().any(|p| self.token_id(p).is_some());
            if known || out.iter().any(|(w, _)| w == word) {
                continue;
            }
            // SentencePiece marks the word's start itself; a lone start mark is not a piece of
            // the word. An encoding error leaves the word out (the prompt's encoding reports it).
            let Ok(ids) = self.encode(word) else { continue };
            let pieces: Vec<String> =
                ids.into_iter().filter(|&i| Some(i) != self.bos).filter_map(|i| self.token(i)).filter(|p| p != "▁").collect();
            if pieces.len() > 1 {
                out.push((word.to_string(), pieces));
            }
        }
        out
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The question in the checkpoint's template ([`PromptTemplate`]) with the answer's start
    /// after it (the authors put it in the prefix: "The color of the dog is").
    pub fn prompt(&self, question: &str, answer_prefix: &str) -> Result<Prompt, ModelError> {
        self.prompt_with(PromptParts { image: true, context: "" }, question, answer_prefix)
    }

    /// [`LlavaTokenizer::prompt`] with a text context before the question, with or without the
    /// image: without it the language model answers from the text alone (the paper's "Llava
    /// TQA").
    pub fn prompt_with(&self, parts: PromptParts<'_>, question: &str, answer_prefix: &str) -> Result<Prompt, ModelError> {
        let question = question.trim();
        if question.is_empty() {
            return Err(ModelError::Prompt("the question is empty".into()));
        }
        for marker in [IMAGE_TOKEN, IM_START, IM_END] {
            if [question, answer_prefix, parts.context].iter().any(|t| t.contains(marker)) {
                return Err(ModelError::Prompt(format!("the question, context and answer prefix may not contain {marker}")));
            }
        }
        let parts = PromptParts { context: parts.context.trim(), ..parts };
        if parts.image && self.image_token.is_none() {
            return Err(ModelError::Prompt("this model has no vision tower: give a text context instead of an image".into()));
        }
        let text = self.template.render(parts, question, answer_prefix.trim());
        let ids = self.encode(&text)?;
        let positions: Vec<usize> = ids.iter().enumerate().filter(|(_, id)| Some(**id) == self.image_token).map(|(i, _)| i).collect();
        match (parts.image, positions.as_slice()) {
            (true, [offset]) => Ok(Prompt { ids, image_offset: Some(*offset) }),
            (false, []) => Ok(Prompt { ids, image_offset: None }),
            (_, found) => Err(ModelError::Prompt(format!(
                "expected {} {IMAGE_TOKEN} token in the encoded prompt, found {}",
                if parts.image { "one" } else { "no" },
                found.len()
            ))),
        }
    }
}

/// A JSON document visited whole, nothing kept: every string is decoded (unlike
/// `serde::de::IgnoredAny`, which skips strings unchecked), so any document this accepts is one
/// serde_json can turn into values.
/// Every special token a `TemplateProcessing` template names (in `single` and `pair`, also
/// inside a `Sequence` of processors) must be one of its `special_tokens`.
fn check_post_processor(p: &serde_json::Value) -> Result<(), String> {
    match p.get("type").and_then(serde_json::Value::as_str) {
        Some("Sequence") => {
            p.get("processors").and_then(serde_json::Value::as_array).into_iter().flatten().try_for_each(check_post_processor)
        }
        Some("TemplateProcessing") => {
            let defined = p.get("special_tokens").and_then(serde_json::Value::as_object);
            for template in ["single", "pair"] {
                for piece in p.get(template).and_then(serde_json::Value::as_array).into_iter().flatten() {
                    let Some(id) = piece.get("SpecialToken").and_then(|s| s.get("id")) else { continue };
                    let known = id.as_str().is_some_and(|id| defined.is_some_and(|d| d.contains_key(id)));
                    if !known {
                        return Err(format!("the {template} template uses the special token {id}, which special_tokens does not define"));
                    }
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

struct JsonChecked;

impl<'de> serde::Deserialize<'de> for JsonChecked {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonCheckedVisitor)
    }
}

struct JsonCheckedVisitor;

impl<'de> serde::de::Visitor<'de> for JsonCheckedVisitor {
    type Value = JsonChecked;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<JsonChecked, E> {
        Ok(JsonChecked)
    }
    fn visit_i64<E>(self, _: i64) -> Result<JsonChecked, E> {
        Ok(JsonChecked)
    }
    fn visit_u64<E>(self, _: u64) -> Result<JsonChecked, E> {
        Ok(JsonChecked)
    }
    fn visit_f64<E>(self, _: f64) -> Result<JsonChecked, E> {
        Ok(JsonChecked)
    }
    fn visit_str<E>(self, _: &str) -> Result<JsonChecked, E> {
        Ok(JsonChecked)
    }
    fn visit_unit<E>(self) -> Result<JsonChecked, E> {
        Ok(JsonChecked)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<JsonChecked, A::Error> {
        while a.next_element::<JsonChecked>()?.is_some() {}
        Ok(JsonChecked)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<JsonChecked, A::Error> {
        while a.next_entry::<JsonChecked, JsonChecked>()?.is_some() {}
        Ok(JsonChecked)
    }
}
