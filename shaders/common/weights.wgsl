// common/weights.wgsl: reading a weight matrix W [N, K] (HF nn.Linear layout) stored as f32, f16,
// Q8G32 or Q4G32, and the activations it multiplies. Not a kernel of its own: the host appends
// it to every shader that reads weights (crates/gpu/src/kernels.rs), so the decoding lives in one
// place. Those shaders' headers document the bindings and overrides declared here.

struct LinearParams {
    m: u32,          // rows of X / Y (matmul), ids (embedding); 1 for matvec
    k: u32,          // inner dimension (columns of W)
    row_start: u32,  // first row of W held by this block
    row_count: u32,  // rows of W held by this block
    y_stride: u32,   // elements per row of Y (the full N for matmul)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

override W_DTYPE: u32 = 0u;

@group(0) @binding(0) var<uniform> params: LinearParams;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> scales: array<u32>;

const GROUP: u32 = 32u;

fn x_at(i: u32) -> f32 {
    return x[i >> 2u][i & 3u];
}

fn w_word(i: u32) -> u32 {
    return w[i >> 2u][i & 3u];
}

// f16 scale of group g (f16 storage without shader-f16: unpack2x16float).
fn scale_at(g: u32) -> f32 {
    return unpack2x16float(scales[g >> 1u])[g & 1u];
}

// Element e = row * K + k of the block, decoded to f32.
fn w_at(e: u32) -> f32 {
    switch W_DTYPE {
        case 0u: {
            return bitcast<f32>(w_word(e));
        }
        case 1u: {
            return unpack2x16float(w_word(e >> 1u))[e & 1u];
        }
        case 2u: {
            let q = extractBits(bitcast<i32>(w_word(e >> 2u)), (e & 3u) * 8u, 8u);
            return scale_at(e / GROUP) * f32(q);
        }
        default: {
            let q = extractBits(w_word(e >> 3u), (e & 7u) * 4u, 4u);
            return scale_at(e / GROUP) * (f32(q) - 8.0);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// GEMM building blocks. Accumulators are named vec4 registers, never arrays indexed in loops:
// drivers put dynamically indexed private arrays in slow local memory (measured on an H200:
// the 128 x 128 kernel ran 7x slower than the 64 x 64 one that way).

// X[m, k], zero outside the matrix.
fn x_or_zero(m: u32, k: u32) -> f32 {
    if (m < params.m && k < params.k) {
        return x_at(m * params.k + k);
    }
    return 0.0;
}

// W[n, k] of this block, zero outside it.
fn w_or_zero(n: u32, k: u32) -> f32 {
    if (n < params.row_count && k < params.k) {
        return w_at(n * params.k + k);
    }
    return 0.0;
}

// Y[m, n..n+4] = v, clipped to the matrix.
fn store4(m: u32, n: u32, v: vec4<f32>) {
    if (m >= params.m) {
        return;
    }
    let base = m * params.y_stride + params.row_start;
    for (var j = 0u; j < 4u; j++) {
        if (n + j < params.row_count) {
            y[base + n + j] = v[j];
        }
    }
}

// Y[m..m+4, n..n+4] = rows c0..c3 (a thread's 4 x 4 register tile), clipped to the matrix.
fn store_4x4(m: u32, n: u32, c0: vec4<f32>, c1: vec4<f32>, c2: vec4<f32>, c3: vec4<f32>) {
    store4(m, n, c0);
    store4(m + 1u, n, c1);
    store4(m + 2u, n, c2);
    store4(m + 3u, n, c3);
}

// X[m, k..k+4] with k % 4 == 0 and K % 4 == 0 (vec4-aligned rows), zero outside the matrix.
fn x4_or_zero(m: u32, k: u32) -> vec4<f32> {
    if (m < params.m && k < params.k) {
        return x[(m * params.k + k) >> 2u];
    }
    return vec4<f32>(0.0);
}

// W[n, k..k+4] of this block under the same conditions, decoded.
fn w4_or_zero(n: u32, k: u32) -> vec4<f32> {
    if (n >= params.row_count || k >= params.k) {
        return vec4<f32>(0.0);
    }
    let e = n * params.k + k;
    switch W_DTYPE {
        case 0u: {
            return bitcast<vec4<f32>>(w[e >> 2u]);
        }
        case 1u: {
            let v = w[e >> 3u];
            return select(halves(v.x, v.y), halves(v.z, v.w), (e & 4u) != 0u);
        }
        case 2u: {
            return scale_at(e / GROUP) * bytes4(w_word(e >> 2u));
        }
        default: {
            let b = w_word(e >> 3u);
            return scale_at(e / GROUP) * select(q4_lo(b), q4_hi(b), (e & 4u) != 0u);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// matvec (linear.wgsl, matvec_subgroup.wgsl): a workgroup of 256 threads serves
// 4 * (256 / MV_LANES) rows: thread t takes the 4 rows 4 * (t / MV_LANES) .. + 4 at lane
// t % MV_LANES. When K is a multiple of 32 a lane takes whole groups: it loads the group's 32
// activations once (8 vec4 registers) and reuses them for its 4 rows (one scale and 1-8 vec4
// weight words per row). Straight-line, branch-free code (rows past the block are clamped and
// their sums dropped at the end) so all loads of an iteration can be in flight together; no
// private arrays (see the GEMM note above). Otherwise (f32/f16 only) a lane walks single
// elements. The host picks MV_LANES so that long rows (down_proj, K = 11008) still spread over
// enough workgroups.

override MV_LANES: u32 = 64u; // a power of two from 8 to 256
const MV_THREADS: u32 = 256u;

// The 32 activations of one group.
struct XGroup {
    a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32>,
    a4: vec4<f32>, a5: vec4<f32>, a6: vec4<f32>, a7: vec4<f32>,
}

fn load_x_group(gi: u32) -> XGroup {
    let b = gi * 8u;
    var r: XGroup;
    r.a0 = x[b]; r.a1 = x[b + 1u]; r.a2 = x[b + 2u]; r.a3 = x[b + 3u];
    r.a4 = x[b + 4u]; r.a5 = x[b + 5u]; r.a6 = x[b + 6u]; r.a7 = x[b + 7u];
    return r;
}

fn f32x4(v: vec4<u32>) -> vec4<f32> {
    return bitcast<vec4<f32>>(v);
}

// Four f16 (two words) as f32.
fn halves(lo: u32, hi: u32) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(lo), unpack2x16float(hi));
}

// Integer-to-float conversions run at a quarter of the FP32 rate on current GPUs and bound the
// quantised matvec; these build the floats from their bits instead: for an integer u < 2^23,
// bitcast<f32>(0x4B000000 | u) is exactly 2^23 + u, so one subtraction recovers u (exact).
const MAGIC_BITS: u32 = 0x4B000000u;
const MAGIC: f32 = 8388608.0; // 2^23

// The four signed bytes of a word as f32, element 0 in the low byte (biased by 128 to unsigned,
// then un-biased in the subtraction).
fn bytes4(b: u32) -> vec4<f32> {
    let u = vec4<u32>(b ^ 0x80808080u) >> vec4<u32>(0u, 8u, 16u, 24u);
    return bitcast<vec4<f32>>((u & vec4<u32>(0xFFu)) | vec4<u32>(MAGIC_BITS)) - (MAGIC + 128.0);
}

// Q4 values q - 8 of nibbles 0-3 and 4-7 of a word.
fn q4_lo(b: u32) -> vec4<f32> {
    let u = vec4<u32>(b) >> vec4<u32>(0u, 4u, 8u, 12u);
    return bitcast<vec4<f32>>((u & vec4<u32>(15u)) | vec4<u32>(MAGIC_BITS)) - (MAGIC + 8.0);
}

fn q4_hi(b: u32) -> vec4<f32> {
    let u = vec4<u32>(b) >> vec4<u32>(16u, 20u, 24u, 28u);
    return bitcast<vec4<f32>>((u & vec4<u32>(15u)) | vec4<u32>(MAGIC_BITS)) - (MAGIC + 8.0);
}

// Sum over one group of W * x, the group's weights starting at vec4 word `word`.
fn dot_group_f32(word: u32, g: XGroup) -> f32 {
    return dot(f32x4(w[word]), g.a0) + dot(f32x4(w[word + 1u]), g.a1) + dot(f32x4(w[word + 2u]), g.a2) + dot(f32x4(w[word + 3u]), g.a3)
         + dot(f32x4(w[word + 4u]), g.a4) + dot(f32x4(w[word + 5u]), g.a5) + dot(f32x4(w[word + 6u]), g.a6) + dot(f32x4(w[word + 7u]), g.a7);
}

fn dot_group_f16(word: u32, g: XGroup) -> f32 {
    let v0 = w[word];
    let v1 = w[word + 1u];
    let v2 = w[word + 2u];
    let v3 = w[word + 3u];
    return dot(halves(v0.x, v0.y), g.a0) + dot(halves(v0.z, v0.w), g.a1) + dot(halves(v1.x, v1.y), g.a2) + dot(halves(v1.z, v1.w), g.a3)
         + dot(halves(v2.x, v2.y), g.a4) + dot(halves(v2.z, v2.w), g.a5) + dot(halves(v3.x, v3.y), g.a6) + dot(halves(v3.z, v3.w), g.a7);
}

// Sum of q * x (the caller applies the scale).
fn dot_group_q8(word: u32, g: XGroup) -> f32 {
    let v0 = w[word];
    let v1 = w[word + 1u];
    return dot(bytes4(v0.x), g.a0) + dot(bytes4(v0.y), g.a1) + dot(bytes4(v0.z), g.a2) + dot(bytes4(v0.w), g.a3)
         + dot(bytes4(v1.x), g.a4) + dot(bytes4(v1.y), g.a5) + dot(bytes4(v1.z), g.a6) + dot(bytes4(v1.w), g.a7);
}

// Sum of (q - 8) * x (the caller applies the scale).
fn dot_group_q4(word: u32, g: XGroup) -> f32 {
    let v = w[word];
    return dot(q4_lo(v.x), g.a0) + dot(q4_hi(v.x), g.a1) + dot(q4_lo(v.y), g.a2) + dot(q4_hi(v.y), g.a3)
         + dot(q4_lo(v.z), g.a4) + dot(q4_hi(v.z), g.a5) + dot(q4_lo(v.w), g.a6) + dot(q4_hi(v.w), g.a7);
}

// Row `row`'s part from group `gi` of x (held in `g`). `row` must be inside the block.
fn row_dot(row: u32, groups: u32, gi: u32, g: XGroup) -> f32 {
    let e = row * groups + gi; // group index within the block
    switch W_DTYPE {
        case 0u: { return dot_group_f32(e * 8u, g); }
        case 1u: { return dot_group_f16(e * 4u, g); }
        case 2u: { return scale_at(e) * dot_group_q8(e * 2u, g); }
        default: { return scale_at(e) * dot_group_q4(e, g); }
    }
}

// The first of the 4 rows of thread `lid` (rows past the block are dropped by the caller).
fn matvec_row0(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * (4u * MV_THREADS / MV_LANES) + (lid / MV_LANES) * 4u;
}

// This lane's partial sums of rows row0 .. row0 + 4.
fn matvec_lane_sums(row0: u32, lane: u32) -> vec4<f32> {
    let k_len = params.k;
    var s = vec4<f32>(0.0);
    if (k_len % GROUP == 0u) {
        let groups = k_len / GROUP;
        let last = params.row_count - 1u;
        let r0 = min(row0, last);
        let r1 = min(row0 + 1u, last);
        let r2 = min(row0 + 2u, last);
        let r3 = min(row0 + 3u, last);
        for (var gi = lane; gi < groups; gi += MV_LANES) {
            let g = load_x_group(gi);
            s += vec4<f32>(row_dot(r0, groups, gi, g), row_dot(r1, groups, gi, g), row_dot(r2, groups, gi, g), row_dot(r3, groups, gi, g));
        }
    } else {
        for (var k = lane; k < k_len; k += MV_LANES) {
            let xv = x_at(k);
            for (var r = 0u; r < 4u; r++) {
                if (row0 + r < params.row_count) {
                    s[r] += w_at((row0 + r) * k_len + k) * xv;
                }
            }
        }
    }
    return s;
}

// The 64 x 64, K-32 GEMMs' loads for one thread (matmul_k32.wgsl, matmul_f16.wgsl): 4 consecutive
// k from k0 + 4 kq of rows `lrow` and `lrow + 32` of the X and W tiles at (m0, n0).
struct TileLoads {
    x0: vec4<f32>,
    x1: vec4<f32>,
    w0: vec4<f32>,
    w1: vec4<f32>,
}

fn load_tile_k32(m0: u32, n0: u32, lrow: u32, k: u32) -> TileLoads {
    return TileLoads(x4_or_zero(m0 + lrow, k), x4_or_zero(m0 + lrow + 32u, k), w4_or_zero(n0 + lrow, k), w4_or_zero(n0 + lrow + 32u, k));
}

// The matvec kernels' workgroup tree (linear.wgsl:matvec, matvec_dot4.wgsl): the MV_LANES
// partial sums of each row meet in log2(MV_LANES) barrier steps, and the row's first 4 lanes
// write its 4 outputs. Call from uniform control flow.
var<workgroup> partial: array<vec4<f32>, 256>;

fn matvec_tree_store(lid: u32, row0: u32, s: vec4<f32>) {
    let lane = lid % MV_LANES;
    partial[lid] = s;
    workgroupBarrier();
    for (var stride = MV_LANES / 2u; stride > 0u; stride >>= 1u) {
        if (lane < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    if (lane < 4u && row0 + lane < params.row_count) {
        y[params.row_start + row0 + lane] = partial[lid - lane][lane];
    }
}
