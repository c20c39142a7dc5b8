// linear.wgsl: every kernel that reads a weight matrix W [N, K] (HF nn.Linear layout, row n is
// output feature n, K runs along the row) stored as f32, f16, Q8G32 or Q4G32.
//
// Entry points
//   matmul       Y[m, row_start + n] = sum_k X[m, k] * W[n, k]   prefill / CLIP: 64 x 64 tiles
//   matmul_wide  the same with 128 x 128 tiles and 8 x 8 outputs per thread (large M and N)
//   matvec       Y[row_start + n]    = sum_k x[k] * W[n, k]      decode (one activation row)
//   embedding    Y[t, k] = W[ids[t] - row_start, k] for ids inside this block's rows
//
// A matrix larger than a storage binding is split by rows into blocks; each block is one dispatch
// with its own `row_start`/`row_count`, writing a disjoint slice of Y.
//
// Bindings (group 0)
//   0  params  uniform     LinearParams
//   1  x       read        array<vec4<f32>>  X [m, k] row-major, f32 (matmul, matvec)
//   2  y       read_write  array<f32>        Y [m, y_stride] f32 (embedding: [n_ids, k])
//   3  w       read        array<vec4<u32>>  values plane of this block, rows [0, row_count):
//                                            f32 bits | f16 pairs | q8 bytes | q4 nibbles
//   4  scales  read        array<u32>        scales plane: one f16 per 32 elements (quantised only;
//                                            a dummy word otherwise)
//   5  ids     read        array<u32>        token ids [m] (embedding only)
//
// Overrides
//   W_DTYPE  0 = f32, 1 = f16, 2 = Q8G32 (d * q), 3 = Q4G32 (d * (q - 8), nibble i of a word is
//            element i)
//
// X and W are read through vec4 views: their bindings are rounded up to 16 bytes by the host.

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
@group(0) @binding(5) var<storage, read> ids: array<u32>;

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

const TILE_K: u32 = 16u;

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

// Stores the 4 consecutive k values of `v` for tile row `row` into a k-major tile of `width`
// vec4 per k (tile[k][row / 4][row % 4]).
fn tile_store_small(is_x: bool, kq: u32, row: u32, v: vec4<f32>) {
    for (var c = 0u; c < 4u; c++) {
        let i = (4u * kq + c) * 16u + row / 4u;
        if (is_x) {
            tile_x[i][row % 4u] = v[c];
        } else {
            tile_w[i][row % 4u] = v[c];
        }
    }
}

fn tile_store_wide(is_x: bool, kq: u32, row: u32, v: vec4<f32>) {
    for (var c = 0u; c < 4u; c++) {
        let i = (4u * kq + c) * 32u + row / 4u;
        if (is_x) {
            wide_x[i][row % 4u] = v[c];
        } else {
            wide_w[i][row % 4u] = v[c];
        }
    }
}

// ---------------------------------------------------------------------------------------------
// matmul: 64 x 64 output tile per workgroup, 16 x 16 threads each owning a 4 x 4 register tile,
// K consumed 16 at a time through workgroup memory (8 KiB). Tiles are stored k-major as vec4 so
// the inner loop is two vec4 reads per 16 FMAs.

var<workgroup> tile_x: array<vec4<f32>, 256>; // [TILE_K][64 / 4]
var<workgroup> tile_w: array<vec4<f32>, 256>; // [TILE_K][64 / 4]

@compute @workgroup_size(16, 16, 1)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let m0 = wid.y * 64u;
    let n0 = wid.x * 64u;
    let tx = lid % 16u; // output columns n0 + tx*4 .. +4
    let ty = lid / 16u; // output rows    m0 + ty*4 .. +4
    // Loader: thread lid fills k = k0 + lid % 16 of rows lid / 16 + 16 r (vec4 row / 4, lane lr % 4).
    let lk = lid % TILE_K;
    let lr = lid / TILE_K;
    var c0 = vec4<f32>(0.0);
    var c1 = vec4<f32>(0.0);
    var c2 = vec4<f32>(0.0);
    var c3 = vec4<f32>(0.0);
    let aligned = params.k % 4u == 0u;
    for (var k0 = 0u; k0 < params.k; k0 += TILE_K) {
        if (aligned) {
            // One vec4 of 4 consecutive k per thread and matrix: row lid / 4, k0 + 4 (lid % 4).
            let row = lid / 4u;
            let kq = lid % 4u;
            tile_store_small(true, kq, row, x4_or_zero(m0 + row, k0 + 4u * kq));
            tile_store_small(false, kq, row, w4_or_zero(n0 + row, k0 + 4u * kq));
        } else {
            for (var r = 0u; r < 4u; r++) {
                let row = lr + 16u * r;
                tile_x[lk * 16u + row / 4u][lr % 4u] = x_or_zero(m0 + row, k0 + lk);
                tile_w[lk * 16u + row / 4u][lr % 4u] = w_or_zero(n0 + row, k0 + lk);
            }
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk++) {
            let a = tile_x[kk * 16u + ty];
            let b = tile_w[kk * 16u + tx];
            c0 += a.x * b;
            c1 += a.y * b;
            c2 += a.z * b;
            c3 += a.w * b;
        }
        workgroupBarrier();
    }
    let m = m0 + ty * 4u;
    let n = n0 + tx * 4u;
    store4(m, n, c0);
    store4(m + 1u, n, c1);
    store4(m + 2u, n, c2);
    store4(m + 3u, n, c3);
}

// ---------------------------------------------------------------------------------------------
// matmul_wide: 128 x 128 output tile, 16 x 16 threads each owning 8 x 8 outputs: rows ty*4 + i
// and 64 + ty*4 + i, columns tx*4 + j and 64 + tx*4 + j, so each k step reads four vec4 from
// workgroup memory for 64 FMAs and neighbouring threads read neighbouring vec4s. 16 KiB of
// workgroup memory: exactly WebGPU's baseline.

var<workgroup> wide_x: array<vec4<f32>, 512>; // [TILE_K][128 / 4]
var<workgroup> wide_w: array<vec4<f32>, 512>; // [TILE_K][128 / 4]

@compute @workgroup_size(16, 16, 1)
fn matmul_wide(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let m0 = wid.y * 128u;
    let n0 = wid.x * 128u;
    let tx = lid % 16u;
    let ty = lid / 16u;
    let lk = lid % TILE_K;
    let lr = lid / TILE_K;
    // c<i><h>: row i < 4 -> ty*4 + i, i >= 4 -> 64 + ty*4 + i - 4; half h: columns + 64 h.
    var c00 = vec4<f32>(0.0); var c01 = vec4<f32>(0.0);
    var c10 = vec4<f32>(0.0); var c11 = vec4<f32>(0.0);
    var c20 = vec4<f32>(0.0); var c21 = vec4<f32>(0.0);
    var c30 = vec4<f32>(0.0); var c31 = vec4<f32>(0.0);
    var c40 = vec4<f32>(0.0); var c41 = vec4<f32>(0.0);
    var c50 = vec4<f32>(0.0); var c51 = vec4<f32>(0.0);
    var c60 = vec4<f32>(0.0); var c61 = vec4<f32>(0.0);
    var c70 = vec4<f32>(0.0); var c71 = vec4<f32>(0.0);
    let aligned = params.k % 4u == 0u;
    for (var k0 = 0u; k0 < params.k; k0 += TILE_K) {
        if (aligned) {
            // Two vec4 of 4 consecutive k per thread and matrix: rows lid / 4 and 64 + lid / 4.
            let row = lid / 4u;
            let kq = lid % 4u;
            let k = k0 + 4u * kq;
            tile_store_wide(true, kq, row, x4_or_zero(m0 + row, k));
            tile_store_wide(true, kq, row + 64u, x4_or_zero(m0 + row + 64u, k));
            tile_store_wide(false, kq, row, w4_or_zero(n0 + row, k));
            tile_store_wide(false, kq, row + 64u, w4_or_zero(n0 + row + 64u, k));
        } else {
            for (var r = 0u; r < 8u; r++) {
                let row = lr + 16u * r;
                wide_x[lk * 32u + row / 4u][lr % 4u] = x_or_zero(m0 + row, k0 + lk);
                wide_w[lk * 32u + row / 4u][lr % 4u] = w_or_zero(n0 + row, k0 + lk);
            }
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk++) {
            let a0 = wide_x[kk * 32u + ty];
            let a1 = wide_x[kk * 32u + 16u + ty];
            let b0 = wide_w[kk * 32u + tx];
            let b1 = wide_w[kk * 32u + 16u + tx];
            c00 += a0.x * b0; c01 += a0.x * b1;
            c10 += a0.y * b0; c11 += a0.y * b1;
            c20 += a0.z * b0; c21 += a0.z * b1;
            c30 += a0.w * b0; c31 += a0.w * b1;
            c40 += a1.x * b0; c41 += a1.x * b1;
            c50 += a1.y * b0; c51 += a1.y * b1;
            c60 += a1.z * b0; c61 += a1.z * b1;
            c70 += a1.w * b0; c71 += a1.w * b1;
        }
        workgroupBarrier();
    }
    let m = m0 + ty * 4u;
    let n = n0 + tx * 4u;
    store4(m, n, c00); store4(m, n + 64u, c01);
    store4(m + 1u, n, c10); store4(m + 1u, n + 64u, c11);
    store4(m + 2u, n, c20); store4(m + 2u, n + 64u, c21);
    store4(m + 3u, n, c30); store4(m + 3u, n + 64u, c31);
    store4(m + 64u, n, c40); store4(m + 64u, n + 64u, c41);
    store4(m + 65u, n, c50); store4(m + 65u, n + 64u, c51);
    store4(m + 66u, n, c60); store4(m + 66u, n + 64u, c61);
    store4(m + 67u, n, c70); store4(m + 67u, n + 64u, c71);
}

// ---------------------------------------------------------------------------------------------
// matvec: a workgroup of 256 threads serves 4 * (256 / MV_LANES) rows: thread t takes the 4 rows
// 4 * (t / MV_LANES) .. + 4 at lane t % MV_LANES. When K is a multiple of 32 a lane takes whole
// groups: it loads the group's 32 activations once (8 vec4 registers) and reuses them for its 4
// rows (one scale and 1-8 vec4 weight words per row). Straight-line, branch-free code (rows past
// the block are clamped and their sums dropped at the end) so all loads of an iteration can be in
// flight together; no private arrays (see the GEMM note above). Otherwise (f32/f16 only) a lane
// walks single elements. Partial sums meet in a workgroup tree. The host picks MV_LANES so that
// long rows (down_proj, K = 11008) still spread over enough workgroups.

override MV_LANES: u32 = 64u; // 32, 64, 128 or 256
const MV_THREADS: u32 = 256u;

var<workgroup> partial: array<vec4<f32>, 256>;

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

@compute @workgroup_size(256, 1, 1)
fn matvec(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let row0 = (wid.y * nwg.x + wid.x) * (4u * MV_THREADS / MV_LANES) + (lid / MV_LANES) * 4u;
    let lane = lid % MV_LANES;
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

// ---------------------------------------------------------------------------------------------
// embedding: one thread per output element; ids outside [row_start, row_start + row_count) belong
// to another block's dispatch and are left alone.

@compute @workgroup_size(256, 1, 1)
fn embedding(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * nwg.x + wid.x) * 256u + lid;
    let k_len = params.k;
    if (i >= params.m * k_len) {
        return;
    }
    let t = i / k_len;
    let k = i % k_len;
    let id = ids[t];
    if (id < params.row_start || id - params.row_start >= params.row_count) {
        return;
    }
    y[i] = w_at((id - params.row_start) * k_len + k);
}
