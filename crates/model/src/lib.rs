//! Llava-1.5 on the llava-lens runtime. Mirrors HF transformers' `LlavaForConditionalGeneration`
//! (transformers/models/llava/modeling_llava.py, transformers/models/clip/modeling_clip.py,
//! transformers/models/llama/modeling_llama.py):
//! config.json and safetensors as HF writes them, the LLaMA tokenizer with llava-hf's added
//! tokens, CLIPImageProcessor's preprocessing, and the forward pass written once over
//! `llava_lens_gpu::ops` with the capture plan available at every layer.

pub mod checkpoint;
pub mod config;
pub mod edits;
mod error;
mod layers;
pub mod llama;
pub mod llava;
pub mod names;
pub mod pillow;
pub mod preprocess;
pub mod presets;
pub mod processor;
mod segments;
pub mod tiny;
pub mod tokenizer;
pub mod vision;
pub mod weights;

pub use checkpoint::Checkpoint;
pub use config::LlavaConfig;
pub use edits::{Edits, RowSource};
pub use error::{ModelError, check_top};
pub use llava::{Llava, Prefill, RunOptions, RunOutput};
pub use tokenizer::{LlavaTokenizer, Prompt, PromptParts};
pub use weights::{RandomWeights, WeightDType, WeightSource};
