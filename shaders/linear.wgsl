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
// Bindings 0-4, the overrides and the decoding of W are in common/weights.wgsl, which the host
// appends to this file (crates/gpu/src/kernels.rs).

@group(0) @binding(5) var<storage, read> ids: array<u32>;

// ---------------------------------------------------------------------------------------------
// GEMM: K is consumed TILE_K at a time through workgroup memory.

const TILE_K: u32 = 16u;

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
    store_4x4(m0 + ty * 4u, n0 + tx * 4u, c0, c1, c2, c3);
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
// matvec: each lane's partial sums of its 4 rows come from `matvec_lane_sums`
// (common/weights.wgsl, which says how rows and lanes are laid out); here they meet in a workgroup
// tree of log2(MV_LANES) barrier steps (`matvec_tree_store`). matvec_subgroup.wgsl is the same
// kernel reduced with subgroup operations, for adapters that have them.

@compute @workgroup_size(256, 1, 1)
fn matvec(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let row0 = matvec_row0(wid, nwg, lid);
    matvec_tree_store(lid, row0, matvec_lane_sums(row0, lid % MV_LANES));
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
