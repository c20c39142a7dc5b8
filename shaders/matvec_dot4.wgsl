// matvec_dot4.wgsl: the decode matvec for Q8G32 and Q4G32 weights on 8-bit activations, with
// WGSL's packed 4 x 8-bit integer dot products (dot4I8Packed: one instruction for four
// multiply-adds where the hardware has it) in place of decoding every weight to f32.
//
// Entry points
//   quantize_x   xq, xs = the activations x [k] quantised per group of 32: d = max|x| / 127,
//                q = round(x / d) in [-127, 127], packed four to a word in the order the weights'
//                words hold their elements (W_DTYPE), with xs[g] = (d, sum of the group's q)
//   matvec_dot4  Y[row_start + n] = sum_g d_w(n, g) * d_x(g) * sum_{k in g} qw[n, k] * qx[k]
//                (Q4: qw = nibble - 8, applied as sum(nibble * qx) - 8 * sum(qx))
//
// Activation rounding moves each product by at most |W[n, k]| * d_x(g) / 2, so a row is within
// sum_k |W[n, k]| * d_x(g(k)) / 2 of the f32 matvec on the same weights (tests/ops/linear.rs
// checks that bound). Not the f32 path the logits parity runs on: used where it is chosen.
//
// Bindings (group 0)
//   0  params  uniform     LinearParams
//   1  x       read        array<vec4<f32>>  x [k] f32 (quantize_x)
//   2  y       read_write  array<f32>        y [n] f32 (matvec_dot4)
//   3  w       read        array<vec4<u32>>  values plane of this block: q8 bytes | q4 nibbles
//   4  scales  read        array<u32>        scales plane: one f16 per 32 elements
//   6  xq      read_write  array<u32>        x quantised: 8 words per group of 32
//   7  xs      read_write  array<vec2<f32>>  per group: (d_x, sum of q)
//
// Overrides
//   W_DTYPE (2 = Q8G32, 3 = Q4G32), MV_LANES as in linear.wgsl. Bindings 0-4, the overrides and
//   the weight decoding are in common/weights.wgsl, which the host appends to this file.
//
// Q4 word layout: nibble i of a word is element i, so masking a word with 0x0F0F0F0F gives
// elements 0, 2, 4, 6 as bytes and shifting it right by 4 first gives 1, 3, 5, 7; quantize_x
// packs x's word pairs in that even / odd order so each half is one dot4I8Packed.

@group(0) @binding(6) var<storage, read_write> xq: array<u32>;
@group(0) @binding(7) var<storage, read_write> xs: array<vec2<f32>>;

// The byte of q (in [-127, 127]) at position `slot` of a packed word.
fn byte_at(q: i32, slot: u32) -> u32 {
    return (bitcast<u32>(q) & 0xFFu) << (8u * slot);
}

// One thread per group of 32 activations.
@compute @workgroup_size(64, 1, 1)
fn quantize_x(@builtin(global_invocation_id) gid: vec3<u32>) {
    let g = gid.x;
    if (g >= params.k / GROUP) {
        return;
    }
    var amax = 0.0;
    for (var i = 0u; i < 8u; i++) {
        let v = abs(x[g * 8u + i]);
        amax = max(amax, max(max(v.x, v.y), max(v.z, v.w)));
    }
    let d = amax / 127.0;
    let inv = select(0.0, 1.0 / d, d > 0.0);
    var sum = 0;
    for (var j = 0u; j < 8u; j++) {
        xq[g * 8u + j] = 0u;
    }
    for (var e = 0u; e < 32u; e++) {
        let q = i32(round(x_at(g * 32u + e) * inv));
        sum += q;
        var word = e / 4u;
        var slot = e % 4u;
        if (W_DTYPE == 3u) {
            // Word pair e / 8: even elements in the first word, odd ones in the second.
            let within = e % 8u;
            word = 2u * (e / 8u) + within % 2u;
            slot = within / 2u;
        }
        xq[g * 8u + word] |= byte_at(q, slot);
    }
    xs[g] = vec2<f32>(d, f32(sum));
}

// sum of qw * qx over group gi of row `row` (Q4: nibbles minus 8), times the weights' scale.
fn row_dot4(row: u32, groups: u32, gi: u32, a: vec4<u32>, b: vec4<u32>, qsum: f32) -> f32 {
    let e = row * groups + gi;
    if (W_DTYPE == 2u) {
        let v0 = w[e * 2u];
        let v1 = w[e * 2u + 1u];
        let s = dot4I8Packed(v0.x, a.x) + dot4I8Packed(v0.y, a.y) + dot4I8Packed(v0.z, a.z) + dot4I8Packed(v0.w, a.w)
              + dot4I8Packed(v1.x, b.x) + dot4I8Packed(v1.y, b.y) + dot4I8Packed(v1.z, b.z) + dot4I8Packed(v1.w, b.w);
        return scale_at(e) * f32(s);
    }
    let v = w[e];
    let m = 0x0F0F0F0Fu;
    let s = dot4I8Packed(v.x & m, a.x) + dot4I8Packed((v.x >> 4u) & m, a.y)
          + dot4I8Packed(v.y & m, a.z) + dot4I8Packed((v.y >> 4u) & m, a.w)
          + dot4I8Packed(v.z & m, b.x) + dot4I8Packed((v.z >> 4u) & m, b.y)
          + dot4I8Packed(v.w & m, b.z) + dot4I8Packed((v.w >> 4u) & m, b.w);
    return scale_at(e) * (f32(s) - 8.0 * qsum);
}

// The row / lane layout of common/weights.wgsl's matvec; whole groups only (K % 32 == 0).
@compute @workgroup_size(256, 1, 1)
fn matvec_dot4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let row0 = matvec_row0(wid, nwg, lid);
    let lane = lid % MV_LANES;
    let groups = params.k / GROUP;
    let last = params.row_count - 1u;
    let r0 = min(row0, last);
    let r1 = min(row0 + 1u, last);
    let r2 = min(row0 + 2u, last);
    let r3 = min(row0 + 3u, last);
    var s = vec4<f32>(0.0);
    for (var gi = lane; gi < groups; gi += MV_LANES) {
        let a = vec4<u32>(xq[gi * 8u], xq[gi * 8u + 1u], xq[gi * 8u + 2u], xq[gi * 8u + 3u]);
        let b = vec4<u32>(xq[gi * 8u + 4u], xq[gi * 8u + 5u], xq[gi * 8u + 6u], xq[gi * 8u + 7u]);
        let g = xs[gi];
        s += g.x * vec4<f32>(row_dot4(r0, groups, gi, a, b, g.y), row_dot4(r1, groups, gi, a, b, g.y),
                             row_dot4(r2, groups, gi, a, b, g.y), row_dot4(r3, groups, gi, a, b, g.y));
    }
    matvec_tree_store(lid, row0, s);
}
