// matmul_f16.wgsl: the 64 x 64 GEMM with f16 arithmetic and f32 accumulation, for devices with
// shader-f16 (most native adapters and browsers; never required). Tiles hold f16, so K goes 32
// at a time through two buffers in 16 KiB; the products of 4 consecutive k are summed in f16
// (vec4<f16> FMAs, which GPUs with packed half2 arithmetic run at up to twice the f32 rate; not
// yet measured here) and every such partial is added to f32 accumulators. Only for K a multiple
// of 4; the host sends other shapes to linear.wgsl:matmul.
//
// Error bound (u = 2^-11, f16's unit roundoff): X and the decoded W are rounded to f16 (one u
// each), each product rounds once and each 4-term partial sum three times, so every output is
// within 6u * sum_k |X[m, k] W[n, k]| (about 2.9e-3 of the absolute dot product) of the exact
// one, plus f32 rounding of the accumulation. tests/ops/linear.rs checks that bound per element.
// Values must stay inside f16's range: |X|, |W| and every 4-term partial below 65504.
//
// Entry points
//   matmul_f16  Y[m, row_start + n] = sum_k X[m, k] * W[n, k]   prefill: 64 x 64 tiles
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

enable f16;

const H_TILE: u32 = 32u;
// vec4 per k step of one buffer: 64 rows / 4.
const H_ROW_VEC4: u32 = 16u;
// vec4 per buffer: H_TILE * H_ROW_VEC4.
const H_BUFFER: u32 = 512u;

var<workgroup> h_x: array<vec4<f16>, 1024>; // [2][H_TILE][64 / 4]
var<workgroup> h_w: array<vec4<f16>, 1024>; // [2][H_TILE][64 / 4]

// Stores a thread's loads (4 consecutive k from 4 kq, rows lrow and lrow + 32 of both tiles),
// rounded to f16, into buffer `b`, k-major.
fn h_store(b: u32, kq: u32, lrow: u32, t: TileLoads) {
    let x0 = vec4<f16>(t.x0);
    let x1 = vec4<f16>(t.x1);
    let w0 = vec4<f16>(t.w0);
    let w1 = vec4<f16>(t.w1);
    for (var c = 0u; c < 4u; c++) {
        let i = b * H_BUFFER + (4u * kq + c) * H_ROW_VEC4 + lrow / 4u;
        h_x[i][lrow % 4u] = x0[c];
        h_x[i + 8u][lrow % 4u] = x1[c];
        h_w[i][lrow % 4u] = w0[c];
        h_w[i + 8u][lrow % 4u] = w1[c];
    }
}

@compute @workgroup_size(16, 16, 1)
fn matmul_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let m0 = wid.y * 64u;
    let n0 = wid.x * 64u;
    let tx = lid % 16u;
    let ty = lid / 16u;
    let lrow = lid / 8u;
    let kq = lid % 8u;
    var c0 = vec4<f32>(0.0);
    var c1 = vec4<f32>(0.0);
    var c2 = vec4<f32>(0.0);
    var c3 = vec4<f32>(0.0);
    let tiles = (params.k + H_TILE - 1u) / H_TILE;
    var next = load_tile_k32(m0, n0, lrow, 4u * kq);
    h_store(0u, kq, lrow, next);
    workgroupBarrier();
    for (var t = 0u; t < tiles; t++) {
        let cur = t % 2u;
        let more = t + 1u < tiles;
        if (more) {
            next = load_tile_k32(m0, n0, lrow, (t + 1u) * H_TILE + 4u * kq);
        }
        let base = cur * H_BUFFER;
        for (var k4 = 0u; k4 < H_TILE; k4 += 4u) {
            var p0 = vec4<f16>(0.0h);
            var p1 = vec4<f16>(0.0h);
            var p2 = vec4<f16>(0.0h);
            var p3 = vec4<f16>(0.0h);
            for (var kk = k4; kk < k4 + 4u; kk++) {
                let a = h_x[base + kk * H_ROW_VEC4 + ty];
                let b = h_w[base + kk * H_ROW_VEC4 + tx];
                p0 = fma(vec4<f16>(a.x), b, p0);
                p1 = fma(vec4<f16>(a.y), b, p1);
                p2 = fma(vec4<f16>(a.z), b, p2);
                p3 = fma(vec4<f16>(a.w), b, p3);
            }
            c0 += vec4<f32>(p0);
            c1 += vec4<f32>(p1);
            c2 += vec4<f32>(p2);
            c3 += vec4<f32>(p3);
        }
        if (more) {
            h_store(1u - cur, kq, lrow, next);
        }
        workgroupBarrier();
    }
    store_4x4(m0 + ty * 4u, n0 + tx * 4u, c0, c1, c2, c3);
}
