// matmul_k32.wgsl: linear.wgsl's 64 x 64 GEMM with K consumed 32 at a time through two
// workgroup-memory buffers (32 KiB in all: more than WebGPU's 16 KiB baseline, so the host uses
// it only where the device's limit allows). Only for K a multiple of 4 (vec4 rows); the host
// sends other shapes to linear.wgsl:matmul.
//
// Entry points
//   matmul_k32  Y[m, row_start + n] = sum_k X[m, k] * W[n, k]   prefill: 64 x 64 tiles
//
// Per tile of 32 k, each thread issues the global loads of the *next* tile into registers before
// it runs the 32 FMA steps of the current one from workgroup memory, then stores the registers
// into the other buffer: the loads' latency hides behind arithmetic, and one barrier per 32 k
// replaces linear.wgsl's two per 16 k. (One barrier suffices: a buffer is written in tile t + 1
// only after every thread has passed tile t's barrier, i.e. finished reading it in tile t - 1.)
//
// Bindings (group 0)
//   0  params  uniform     LinearParams
//   1  x       read        array<vec4<f32>>  X [m, k] row-major, f32
//   2  y       read_write  array<f32>        Y [m, y_stride] f32
//   3  w       read        array<vec4<u32>>  values plane of this block, rows [0, row_count)
//   4  scales  read        array<u32>        scales plane: one f16 per 32 elements (quantised only;
//                                            a dummy word otherwise)
//
// Overrides
//   W_DTYPE as in linear.wgsl. The bindings, overrides and weight decoding are in
//   common/weights.wgsl, which the host appends to this file (crates/gpu/src/kernels.rs).

const K32_TILE: u32 = 32u;
// vec4 per k step of one buffer: 64 rows / 4.
const K32_ROW_VEC4: u32 = 16u;
// vec4 per buffer: K32_TILE * K32_ROW_VEC4.
const K32_BUFFER: u32 = 512u;

var<workgroup> k32_x: array<vec4<f32>, 1024>; // [2][K32_TILE][64 / 4]
var<workgroup> k32_w: array<vec4<f32>, 1024>; // [2][K32_TILE][64 / 4]

// Stores a thread's loads (4 consecutive k from 4 kq, rows lrow and lrow + 32 of both tiles)
// into buffer `b`, k-major (tile[k][row / 4][row % 4]) so the inner loop reads whole vec4 of 4
// rows.
fn k32_store(b: u32, kq: u32, lrow: u32, t: TileLoads) {
    for (var c = 0u; c < 4u; c++) {
        let i = b * K32_BUFFER + (4u * kq + c) * K32_ROW_VEC4 + lrow / 4u;
        k32_x[i][lrow % 4u] = t.x0[c];
        k32_x[i + 8u][lrow % 4u] = t.x1[c];
        k32_w[i][lrow % 4u] = t.w0[c];
        k32_w[i + 8u][lrow % 4u] = t.w1[c];
    }
}

@compute @workgroup_size(16, 16, 1)
fn matmul_k32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let m0 = wid.y * 64u;
    let n0 = wid.x * 64u;
    let tx = lid % 16u; // output columns n0 + tx*4 .. +4
    let ty = lid / 16u; // output rows    m0 + ty*4 .. +4
    // Loader: rows lid / 8 and 32 + lid / 8 of each matrix, k quad lid % 8 (8 quads = 32 k).
    let lrow = lid / 8u;
    let kq = lid % 8u;
    var c0 = vec4<f32>(0.0);
    var c1 = vec4<f32>(0.0);
    var c2 = vec4<f32>(0.0);
    var c3 = vec4<f32>(0.0);
    let tiles = (params.k + K32_TILE - 1u) / K32_TILE;
    var next = load_tile_k32(m0, n0, lrow, 4u * kq);
    k32_store(0u, kq, lrow, next);
    workgroupBarrier();
    for (var t = 0u; t < tiles; t++) {
        let cur = t % 2u;
        let more = t + 1u < tiles;
        if (more) {
            next = load_tile_k32(m0, n0, lrow, (t + 1u) * K32_TILE + 4u * kq);
        }
        let base = cur * K32_BUFFER;
        for (var kk = 0u; kk < K32_TILE; kk++) {
            let a = k32_x[base + kk * K32_ROW_VEC4 + ty];
            let b = k32_w[base + kk * K32_ROW_VEC4 + tx];
            c0 += a.x * b;
            c1 += a.y * b;
            c2 += a.z * b;
            c3 += a.w * b;
        }
        if (more) {
            k32_store(1u - cur, kq, lrow, next);
        }
        workgroupBarrier();
    }
    store_4x4(m0 + ty * 4u, n0 + tx * 4u, c0, c1, c2, c3);
}
