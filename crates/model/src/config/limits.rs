//! Bounds on every size a config sets, far above any released Llava (the largest decoders have
//! about 128 layers, hidden size 16384 and vocabularies of about 256k tokens): a value outside
//! them is a damaged or hostile file, refused before anything is allocated from it. They also
//! keep every product of two sizes inside u64 (the estimates are computed in u64 everywhere,
//! wasm32 included).

pub const HIDDEN: usize = 1 << 16;
pub const INTERMEDIATE: usize = 1 << 18;
pub const VISION_LAYERS: usize = 256;
pub const TEXT_LAYERS: usize = 1024;
pub const HEADS: usize = 1024;
pub const HEAD_DIM: usize = 1024;
pub const VOCAB: usize = 1 << 20;
pub const POSITIONS: usize = 1 << 22;
/// The vision tower's input side in pixels (CLIP-L/336 uses 336, SigLIP 384).
pub const IMAGE_SIZE: usize = 2048;
/// Patches per side of the image grid.
pub const GRID: usize = 128;
/// Hidden states a `vision_feature_layer` list may concatenate (VipLlava-style checkpoints use 5).
pub const FEATURE_LAYERS: usize = 16;
