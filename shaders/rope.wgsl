// rope.wgsl: rotary position embedding in place, HF rotate_half convention (element i of a head
// pairs with element i + head_dim/2), as LlamaRotaryEmbedding + apply_rotary_pos_emb.
//
// Entry points
//   rope       for row r (position pos_offset + r), head h, i < head_dim/2:
//              inv_freq = 1 / theta^(2i / head_dim), angle = pos * inv_freq
//              (x1, x2) = (x1 cos - x2 sin, x2 cos + x1 sin)
//   rope_rows  the same with row r at position positions[r] (rows of several sequences stacked:
//              the batched passes of activation patching)
//
// Bindings (group 0)
//   0  params     uniform     RopeParams
//   1  x          read_write  array<f32>  [n_rows, row_stride]; heads at columns col_offset + h*head_dim
//   2  positions  read        array<u32>  [n_rows]  (rope_rows only)

struct RopeParams {
    n_rows: u32,
    n_heads: u32,
    head_dim: u32,
    row_stride: u32,
    col_offset: u32,
    pos_offset: u32,  // position of row 0 (the KV-cache length when decoding)
    theta: f32,       // rope_theta (10000 for Llava-1.5)
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: RopeParams;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

// 2*pi split so that k * TWO_PI_HI is exact for k < 2^16 (Cody-Waite reduction): GPU sin/cos are
// only accurate near [-pi, pi], and angles reach thousands of radians at long positions.
const TWO_PI_HI: f32 = 6.28125;
const TWO_PI_LO: f32 = 1.9353071795864769e-3;
const INV_TWO_PI: f32 = 0.15915494309189535;

@group(0) @binding(2) var<storage, read> positions: array<u32>;

// Thread t's pair of element i of head h in row r, rotated to position pos.
fn rotate(t: u32, r: u32, pos: u32) {
    let half = params.head_dim / 2u;
    let i = t % half;
    let h = (t / half) % params.n_heads;
    let inv_freq = 1.0 / pow(params.theta, f32(2u * i) / f32(params.head_dim));
    let angle = f32(pos) * inv_freq;
    let k = round(angle * INV_TWO_PI);
    let reduced = (angle - k * TWO_PI_HI) - k * TWO_PI_LO;
    let c = cos(reduced);
    let s = sin(reduced);
    let base = r * params.row_stride + params.col_offset + h * params.head_dim;
    let x1 = x[base + i];
    let x2 = x[base + i + half];
    x[base + i] = x1 * c - x2 * s;
    x[base + i + half] = x2 * c + x1 * s;
}

@compute @workgroup_size(256, 1, 1)
fn rope(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let t = (wid.y * nwg.x + wid.x) * 256u + lid;
    let half = params.head_dim / 2u;
    if (t >= params.n_rows * params.n_heads * half) {
        return;
    }
    let r = t / (half * params.n_heads);
    rotate(t, r, params.pos_offset + r);
}

@compute @workgroup_size(256, 1, 1)
fn rope_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let t = (wid.y * nwg.x + wid.x) * 256u + lid;
    let half = params.head_dim / 2u;
    if (t >= params.n_rows * params.n_heads * half) {
        return;
    }
    let r = t / (half * params.n_heads);
    rotate(t, r, positions[r]);
}
