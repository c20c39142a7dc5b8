// linear.wgsl: every kernel that reads a weight matrix W [N, K] (HF nn.Linear layout, row n is
// output feature n, K runs along the row) stored as f32, f16, Q8G32 or Q4G32.
//
// Entry points
//   matmul     Y[m, row_start + n] = sum_k X[m, k] * W[n, k]   prefill / CLIP (tiled GEMM)
//   matvec     Y[row_start + n]    = sum_k x[k] * W[n, k]      decode (one activation row)
//   embedding  Y[t, k] = W[ids[t] - row_start, k] for ids inside this block's rows
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
// matmul: 64 x 64 output tile per workgroup, 16 x 16 threads each owning a 4 x 4 register tile,
// K consumed 16 at a time through workgroup memory (8 KiB, inside WebGPU's 16 KiB baseline).
// Tiles are stored k-major as vec4 so the inner loop is two vec4 reads per 16 FMAs.

const TILE_M: u32 = 64u;
const TILE_N: u32 = 64u;
const TILE_K: u32 = 16u;

var<workgroup> tile_x: array<vec4<f32>, 256>; // [TILE_K][TILE_M / 4]
var<workgroup> tile_w: array<vec4<f32>, 256>; // [TILE_K][TILE_N / 4]

@compute @workgroup_size(16, 16, 1)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let m0 = wid.y * TILE_M;
    let n0 = wid.x * TILE_N;
    let tx = lid % 16u; // output columns n0 + tx*4 .. +4
    let ty = lid / 16u; // output rows    m0 + ty*4 .. +4
    // Loader mapping: thread lid fills column kk = lid % 16 of rows lid / 16 + 16 * r.
    let lk = lid % TILE_K;
    let lr = lid / TILE_K;
    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    let k_len = params.k;
    for (var k0 = 0u; k0 < k_len; k0 += TILE_K) {
        let k = k0 + lk;
        var xs: vec4<f32>;
        var ws: vec4<f32>;
        for (var r = 0u; r < 4u; r++) {
            let row = lr + 16u * r;
            let m = m0 + row;
            let n = n0 + row;
            var xv = 0.0;
            if (m < params.m && k < k_len) {
                xv = x_at(m * k_len + k);
            }
            var wv = 0.0;
            if (n < params.row_count && k < k_len) {
                wv = w_at(n * k_len + k);
            }
            xs[r] = xv;
            ws[r] = wv;
        }
        // Rows lr, lr+16, lr+32, lr+48 land in different vec4s: write them one lane at a time.
        for (var r = 0u; r < 4u; r++) {
            let row = lr + 16u * r;
            tile_x[lk * 16u + row / 4u][row % 4u] = xs[r];
            tile_w[lk * 16u + row / 4u][row % 4u] = ws[r];
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk++) {
            let a = tile_x[kk * 16u + ty];
            let b = tile_w[kk * 16u + tx];
            acc[0] += a.x * b;
            acc[1] += a.y * b;
            acc[2] += a.z * b;
            acc[3] += a.w * b;
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let m = m0 + ty * 4u + i;
        if (m >= params.m) {
            break;
        }
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + tx * 4u + j;
            if (n < params.row_count) {
                y[m * params.y_stride + params.row_start + n] = acc[i][j];
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// matvec: 8 rows per workgroup of 256 threads, 32 threads per row. When K is a multiple of 32 a
// thread takes whole groups (one scale, 32 weights in 1-8 vec4 words, 8 vec4 of x); otherwise
// (f32/f16 only) it walks single elements. Partial sums meet in a workgroup-memory tree.

const MV_ROWS: u32 = 8u;
const MV_LANES: u32 = 32u;

var<workgroup> partial: array<f32, 256>;

fn dot_group_f32(row_word: u32, g: u32, xg: u32) -> f32 {
    var s = 0.0;
    for (var i = 0u; i < 8u; i++) {
        s += dot(bitcast<vec4<f32>>(w[row_word + g * 8u + i]), x[xg + i]);
    }
    return s;
}

fn dot_group_f16(row_word: u32, g: u32, xg: u32) -> f32 {
    var s = 0.0;
    for (var i = 0u; i < 4u; i++) {
        let v = w[row_word + g * 4u + i];
        let a = vec4<f32>(unpack2x16float(v.x), unpack2x16float(v.y));
        let b = vec4<f32>(unpack2x16float(v.z), unpack2x16float(v.w));
        s += dot(a, x[xg + 2u * i]) + dot(b, x[xg + 2u * i + 1u]);
    }
    return s;
}

fn dot_group_q8(row_word: u32, g: u32, xg: u32, d: f32) -> f32 {
    var s = 0.0;
    for (var i = 0u; i < 2u; i++) {
        let v = bitcast<vec4<i32>>(w[row_word + g * 2u + i]);
        for (var j = 0u; j < 4u; j++) {
            let word = v[j];
            let q = vec4<f32>(
                f32(extractBits(word, 0u, 8u)),
                f32(extractBits(word, 8u, 8u)),
                f32(extractBits(word, 16u, 8u)),
                f32(extractBits(word, 24u, 8u)));
            s += dot(q, x[xg + i * 4u + j]);
        }
    }
    return d * s;
}

fn dot_group_q4(row_word: u32, g: u32, xg: u32, d: f32) -> f32 {
    let v = w[row_word + g];
    var s = 0.0;
    for (var j = 0u; j < 4u; j++) {
        let word = v[j];
        let lo = vec4<f32>(
            f32(extractBits(word, 0u, 4u)),
            f32(extractBits(word, 4u, 4u)),
            f32(extractBits(word, 8u, 4u)),
            f32(extractBits(word, 12u, 4u))) - 8.0;
        let hi = vec4<f32>(
            f32(extractBits(word, 16u, 4u)),
            f32(extractBits(word, 20u, 4u)),
            f32(extractBits(word, 24u, 4u)),
            f32(extractBits(word, 28u, 4u))) - 8.0;
        s += dot(lo, x[xg + 2u * j]) + dot(hi, x[xg + 2u * j + 1u]);
    }
    return d * s;
}

// vec4 words of W per group of 32 elements, by dtype.
fn words_per_group() -> u32 {
    switch W_DTYPE {
        case 0u: { return 8u; }
        case 1u: { return 4u; }
        case 2u: { return 2u; }
        default: { return 1u; }
    }
}

@compute @workgroup_size(256, 1, 1)
fn matvec(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let row = (wid.y * nwg.x + wid.x) * MV_ROWS + lid / MV_LANES;
    let lane = lid % MV_LANES;
    let k_len = params.k;
    var s = 0.0;
    if (row < params.row_count) {
        if (k_len % GROUP == 0u) {
            let groups = k_len / GROUP;
            let row_word = row * groups * words_per_group();
            for (var g = lane; g < groups; g += MV_LANES) {
                let xg = g * 8u;
                switch W_DTYPE {
                    case 0u: { s += dot_group_f32(row_word, g, xg); }
                    case 1u: { s += dot_group_f16(row_word, g, xg); }
                    case 2u: { s += dot_group_q8(row_word, g, xg, scale_at(row * groups + g)); }
                    default: { s += dot_group_q4(row_word, g, xg, scale_at(row * groups + g)); }
                }
            }
        } else {
            for (var k = lane; k < k_len; k += MV_LANES) {
                s += w_at(row * k_len + k) * x_at(k);
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
    if (lane == 0u && row < params.row_count) {
        y[params.row_start + row] = partial[lid];
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
