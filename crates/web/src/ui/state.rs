//! The page's state, grouped by concern: the model (where it comes from, loading, storage), the
//! visitor's inputs, a run under way, the last result, and how the result is viewed. Every field
//! is a signal (cheap to copy into closures); choices are enums, not strings.

use std::sync::Arc;

use leptos::prelude::*;
use llava_lens_explain::explanation::Crop;
use llava_lens_explain::faithfulness::Faithfulness;
use llava_lens_explain::render::Palette;
use llava_lens_model::WeightDType;

use llava_lens_explain::intervene::Outcome as Dist;
use llava_lens_explain::intervene::patching::Patching;

use crate::files::{Plan, StoredModel};
use crate::notice::Notice;
use crate::protocol::PatchPositions;
use crate::protocol::Request;
use crate::share::Recorded;

/// Where the model comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The bundled demo model, served beside the page.
    Demo,
    /// An HF-format folder at a URL.
    Url,
    /// Files or a folder on the visitor's computer.
    Files,
}

impl Source {
    /// The value of its `<option>`.
    pub fn key(self) -> &'static str {
        match self {
            Source::Demo => "demo",
            Source::Url => "url",
            Source::Files => "files",
        }
    }

    pub fn from_key(key: &str) -> Source {
        match key {
            "url" => Source::Url,
            "files" => Source::Files,
            _ => Source::Demo,
        }
    }
}

/// Which map the main view shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapChoice {
    /// The paper's map: the best head's score per patch.
    Paper,
    /// Mean attention of the last position over the image (the baseline).
    MeanAttention,
    /// The sum of the top-k heads' maps.
    TopK,
    /// One head's map (layer, head), picked in the head grid.
    Head(usize, usize),
}

/// The colour maps a visitor can pick, by `<option>` value.
pub fn palette_key(p: Palette) -> &'static str {
    match p {
        Palette::Signed => "signed",
        Palette::Viridis => "viridis",
        Palette::Gray => "gray",
    }
}

pub fn palette_from_key(key: &str) -> Palette {
    match key {
        "viridis" => Palette::Viridis,
        "gray" => Palette::Gray,
        _ => Palette::Signed,
    }
}

/// The model: its source, what loading takes, progress, and the browser's storage.
#[derive(Clone, Copy)]
pub struct ModelState {
    pub status: RwSignal<String>,
    /// The GPU adapter and the worker's memory after the load (the status line's tooltip).
    pub adapter: RwSignal<Option<String>>,
    pub loaded: RwSignal<Option<String>>,
    /// A check or load is under way (the model panel's buttons wait for it).
    pub loading: RwSignal<bool>,
    pub download: RwSignal<Option<(u64, u64)>>,
    pub upload: RwSignal<Option<(u64, u64)>>,
    pub plan: RwSignal<Option<Plan>>,
    pub pending_load: RwSignal<bool>,
    /// A `?model=` link waits for the storage list to decide whether it may load at once.
    pub link_model_pending: RwSignal<bool>,
    /// The other server a `?model=` link would download from, until the visitor agrees.
    pub link_model_host: RwSignal<Option<String>>,
    pub stored: RwSignal<Vec<StoredModel>>,
    pub usage: RwSignal<Option<(u64, u64)>>,
    pub source: RwSignal<Source>,
    pub url: RwSignal<String>,
    pub dtype: RwSignal<WeightDType>,
    pub chosen: RwSignal<Vec<String>>,
}

/// The visitor's picture as drawn: shrunk to at most [`Picture::SIDE`] pixels on its long side,
/// decoded once when the picture is chosen, with its full width (the crop box is in full pixels).
#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    pub shown: Arc<image::RgbImage>,
    pub full_width: u32,
}

impl Picture {
    pub const SIDE: u32 = 720;

    pub fn of(img: &image::DynamicImage) -> Picture {
        let (w, h) = (img.width().max(1), img.height().max(1));
        let k = (Self::SIDE as f32 / w.max(h) as f32).min(1.0);
        let shown = if k < 1.0 {
            img.thumbnail(((w as f32 * k).round() as u32).max(1), ((h as f32 * k).round() as u32).max(1)).to_rgb8()
        } else {
            img.to_rgb8()
        };
        Picture { shown: Arc::new(shown), full_width: w }
    }

    /// The model's crop box (in the full picture's pixels) in the shown picture's pixels.
    pub fn place(&self, crop: Crop) -> Original {
        let k = self.shown.width() as f32 / self.full_width.max(1) as f32;
        Original { image: self.shown.clone(), crop: Crop { x: crop.x * k, y: crop.y * k, width: crop.width * k, height: crop.height * k } }
    }
}

/// What the visitor asks: the image and the question.
#[derive(Clone, Copy)]
pub struct Inputs {
    /// The picture's file bytes (sent to the worker) and its decoded form (drawn).
    pub image: RwSignal<Option<Vec<u8>>>,
    pub picture: RwSignal<Option<Picture>>,
    pub question: RwSignal<String>,
    pub prefix: RwSignal<String>,
    pub target: RwSignal<String>,
    pub contrast: RwSignal<String>,
    /// The gallery scene whose questions are listed.
    pub scene: RwSignal<usize>,
}

/// A computation in the worker.
#[derive(Clone, Copy)]
pub struct Run {
    pub busy: RwSignal<bool>,
    pub progress: RwSignal<Option<(u64, u64)>>,
    /// The inputs of the last explanation (a head click re-runs them for that head's map).
    pub live: RwSignal<Option<Request>>,
    /// The picture of the explanation asked for last (drawn under its map).
    pub sent_picture: RwSignal<Option<Picture>>,
    pub millis: RwSignal<Option<f64>>,
    /// A gallery question was picked before the model was ready: explained once it is.
    pub queued: RwSignal<bool>,
    /// A new result waits to be brought into view once it is drawn.
    pub reveal: RwSignal<bool>,
    /// The worker's wasm memory after the last explanation.
    pub memory: RwSignal<Option<u64>>,
}

/// The visitor's own picture, shrunk for drawing, with the model's crop box in its pixels.
#[derive(Debug, Clone)]
pub struct Original {
    pub image: Arc<image::RgbImage>,
    pub crop: Crop,
}

/// The last explanation.
#[derive(Clone, Copy)]
pub struct Outcome {
    pub recorded: RwSignal<Option<Recorded>>,
    /// The explanation as the CLI's JSON.
    pub json: RwSignal<Option<String>>,
    /// (layer, head, patch scores) of every head the last explanation mapped.
    pub head_maps: RwSignal<Vec<(usize, usize, Vec<f32>)>>,
    /// The top-k heads' summed map, with k.
    pub top_k: RwSignal<Option<(usize, Vec<f32>)>>,
    /// Logit-lens tokens per patch of a live explanation (share links do not carry them).
    pub lens_tokens: RwSignal<Option<Vec<Vec<String>>>>,
    /// Question words the vocabulary has no whole piece for, with their pieces.
    pub split_words: RwSignal<Vec<(String, Vec<String>)>>,
    pub original: RwSignal<Option<Original>>,
    pub faithful: RwSignal<Option<Faithfulness>>,
    pub faithful_ms: RwSignal<Option<f64>>,
    pub share_link: RwSignal<Option<String>>,
}

/// How the result is viewed.
#[derive(Clone, Copy)]
pub struct ViewState {
    pub map: RwSignal<MapChoice>,
    pub opacity: RwSignal<f32>,
    pub crisp: RwSignal<bool>,
    pub palette: RwSignal<Palette>,
    /// The patch under the pointer or the keyboard cursor.
    pub cursor: RwSignal<Option<usize>>,
    /// The head grid's keyboard cursor (layer, head).
    pub head_cursor: RwSignal<Option<(usize, usize)>>,
}

/// Activation patching's result as the page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchView {
    pub patching: Patching,
    /// A label per sequence position (its token, or the patch's row and column).
    pub labels: Vec<String>,
    pub target: String,
    pub contrast: String,
    pub millis: f64,
}

/// The whole answer: each token, its explanation's JSON and what the page draws for it.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerView {
    pub tokens: Vec<String>,
    pub explanations: Vec<llava_lens_explain::Explanation>,
    pub recorded: Vec<Recorded>,
    pub millis: f64,
}

/// Zoom and re-ask's result as the page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoomView {
    pub before: Dist,
    pub by_map: llava_lens_explain::intervene::zoom::Zoomed,
    pub random: Vec<llava_lens_explain::intervene::zoom::Zoomed>,
    pub window_jpeg: Vec<u8>,
    pub millis: f64,
}

/// A knockout's patches, the answer before and after, and its time (ms).
pub type Knocked = (Vec<usize>, Dist, Dist, f64);

/// "What if…": interventions on the last explanation's input.
#[derive(Clone, Copy)]
pub struct WhatIf {
    /// The map takes brush strokes (patches to knock out) instead of only pointing.
    pub brushing: RwSignal<bool>,
    /// A stroke is under way (pointer down).
    pub stroke: RwSignal<bool>,
    /// The patches brushed so far.
    pub brushed: RwSignal<Vec<usize>>,
    /// The knockout's patches and the answer before and after.
    pub knockout: RwSignal<Option<Knocked>>,
    /// The last head ablation (heads, mode) and the answer before and after.
    pub ablation: RwSignal<Option<(llava_lens_explain::intervene::ablation::HeadAblation, f64)>>,
    /// The gallery scene patching takes as its corrupted input, and which positions it patches.
    pub patch_scene: RwSignal<usize>,
    pub patch_positions: RwSignal<PatchPositions>,
    pub patching: RwSignal<Option<PatchView>>,
    pub answer: RwSignal<Option<AnswerView>>,
    /// The answer on the map's window and on random ones, with the window as JPEG.
    pub zoomed: RwSignal<Option<ZoomView>>,
    /// Which answer token's explanation the main view shows (0: the first, the usual one).
    pub answer_shown: RwSignal<usize>,
}

/// Everything the page shows.
#[derive(Clone, Copy)]
pub struct State {
    pub model: ModelState,
    pub input: Inputs,
    pub run: Run,
    pub out: Outcome,
    pub view: ViewState,
    pub whatif: WhatIf,
    pub error: RwSignal<Option<Notice>>,
    /// `?embed=1`: the main screen alone, for documentation pages.
    pub embed: bool,
}

impl State {
    pub fn new(embed: bool) -> State {
        State {
            model: ModelState {
                status: RwSignal::new("starting".into()),
                adapter: RwSignal::new(None),
                loaded: RwSignal::new(None),
                loading: RwSignal::new(false),
                download: RwSignal::new(None),
                upload: RwSignal::new(None),
                plan: RwSignal::new(None),
                pending_load: RwSignal::new(false),
                link_model_pending: RwSignal::new(false),
                link_model_host: RwSignal::new(None),
                stored: RwSignal::new(Vec::new()),
                usage: RwSignal::new(None),
                source: RwSignal::new(Source::Demo),
                url: RwSignal::new(String::new()),
                dtype: RwSignal::new(WeightDType::F32),
                chosen: RwSignal::new(Vec::new()),
            },
            input: Inputs {
                image: RwSignal::new(None),
                picture: RwSignal::new(None),
                question: RwSignal::new(String::new()),
                prefix: RwSignal::new(String::new()),
                target: RwSignal::new(String::new()),
                contrast: RwSignal::new(String::new()),
                scene: RwSignal::new(0),
            },
            run: Run {
                busy: RwSignal::new(false),
                progress: RwSignal::new(None),
                live: RwSignal::new(None),
                sent_picture: RwSignal::new(None),
                millis: RwSignal::new(None),
                queued: RwSignal::new(false),
                reveal: RwSignal::new(false),
                memory: RwSignal::new(None),
            },
            out: Outcome {
                recorded: RwSignal::new(None),
                json: RwSignal::new(None),
                head_maps: RwSignal::new(Vec::new()),
                top_k: RwSignal::new(None),
                lens_tokens: RwSignal::new(None),
                split_words: RwSignal::new(Vec::new()),
                original: RwSignal::new(None),
                faithful: RwSignal::new(None),
                faithful_ms: RwSignal::new(None),
                share_link: RwSignal::new(None),
            },
            view: ViewState {
                map: RwSignal::new(MapChoice::Paper),
                opacity: RwSignal::new(0.5),
                crisp: RwSignal::new(true),
                palette: RwSignal::new(Palette::Signed),
                cursor: RwSignal::new(None),
                head_cursor: RwSignal::new(None),
            },
            whatif: WhatIf {
                brushing: RwSignal::new(false),
                stroke: RwSignal::new(false),
                brushed: RwSignal::new(Vec::new()),
                knockout: RwSignal::new(None),
                ablation: RwSignal::new(None),
                patch_scene: RwSignal::new(1),
                patch_positions: RwSignal::new(PatchPositions::Image),
                patching: RwSignal::new(None),
                answer: RwSignal::new(None),
                zoomed: RwSignal::new(None),
                answer_shown: RwSignal::new(0),
            },
            error: RwSignal::new(None),
            embed,
        }
    }

    /// A new picture to ask about: its bytes and its decoded form.
    pub fn set_picture(&self, bytes: Vec<u8>, img: &image::DynamicImage) {
        self.input.picture.set(Some(Picture::of(img)));
        self.input.image.set(Some(bytes));
    }

    /// Shows `text` as the page's message (already in the visitor's words, or made so by
    /// [`crate::notice::notice`]).
    pub fn fail(&self, text: impl Into<String>) {
        self.error.set(Some(crate::notice::notice(&text.into())));
    }
}
