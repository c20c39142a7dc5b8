// common/attention.wgsl: the parameters and bindings 0-9 of both attention shaders
// (attention.wgsl, flash_attention.wgsl). Not a kernel of its own: the host appends it to each
// (crates/gpu/src/kernels.rs); their headers document the bindings.

struct AttentionParams {
    n_queries: u32,
    n_keys: u32,
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    q_stride: u32,
    q_offset: u32,
    k_stride: u32,
    k_offset: u32,
    v_stride: u32,
    v_offset: u32,
    causal: u32,
    scale: f32,
    n_head_slots: u32,  // capture: head slots per row slot
    mask_from: u32,     // first query position whose attention honours key_mask (NONE: no mask)
    n_row_slots: u32,   // capture: row slots (flash_attention.wgsl's capture pass)
}

@group(0) @binding(0) var<uniform> params: AttentionParams;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read> capture_rows: array<u32>;
@group(0) @binding(6) var<storage, read> capture_heads: array<u32>;
@group(0) @binding(7) var<storage, read_write> pattern: array<f32>;
@group(0) @binding(8) var<storage, read_write> z: array<f32>;
@group(0) @binding(9) var<storage, read> key_mask: array<u32>;

const WG: u32 = 128u;
const NONE: u32 = 0xffffffffu;
