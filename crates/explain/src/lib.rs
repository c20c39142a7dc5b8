//! The attribution method of Yu & Ananiadou, "Understanding Multimodal LLMs: the Mechanistic
//! Interpretability of Llava in Visual Question Answering" (2024), as docs/METHOD.md states it:
//! one forward pass; every vector projected to the vocabulary through the final norm with its
//! scale frozen at the last layer's output (eps 1e-6); a component's importance is the
//! log-probability of the target it adds to the residual entering its layer; the best head's
//! per-position scores over the image patches are the map.
//!
//! [`method`] is the pure part (scores from log-probabilities, rankings, normalisation);
//! [`engine`] runs the method's steps on the GPU with batched vocabulary projections, reading
//! back only small results; [`explanation`] is the document they produce.

pub mod engine;
pub mod explanation;
pub mod faithfulness;
pub mod intervene;
mod lens;
pub mod method;
mod options;
mod projection;
pub mod render;
mod storage;

pub use engine::{ExplainError, ExplainOptions, explain, last_query_attention};
pub use explanation::{Explanation, HeadScore, SCHEMA};
pub use storage::StorageProbe;
