// explain.wgsl: the reshaping steps of the Yu & Ananiadou attribution (docs/METHOD.md sec. 3-4)
// that turn captured activations into rows for one batched vocabulary projection.
//
// Entry points
//   fixed_rms_norm    y[r, c] = x[r, c] * weight[c] / sqrt(mean_k(reference[k]^2) + eps): the
//                     final norm with its scale frozen at the last layer's output (the authors'
//                     projection z(v); eps 1e-6, not the model's 1e-5). One workgroup per row.
//   scatter_heads     y[h, h * head_dim + d] = x[h * head_dim + d], 0 elsewhere: per-head outputs
//                     z (before o_proj) as a block-diagonal [heads, heads * head_dim] matrix, so
//                     one GEMM with o_proj gives every head's output vector.
//   weighted_values   y[j, head * head_dim + d] = reference[j] * x[j * v_stride + kv_head *
//                     head_dim + d], 0 in the other heads' columns: alpha_j v_j of one head for
//                     every position j, ready for o_proj (the weighted value-output vectors u_j).
//
// Bindings (group 0)
//   0  params     uniform     ExplainParams
//   1  x          read        array<f32>  rows to scale | z [heads * head_dim] | V cache [rows, v_stride]
//   2  weight     read        array<f32>  [cols] final-norm weight (fixed_rms_norm)
//   3  reference  read        array<f32>  [cols] last-layer output (fixed_rms_norm) | alpha [rows]
//                                         (weighted_values)
//   4  y          read_write  array<f32>  [rows, cols]

struct ExplainParams {
    rows: u32,
    cols: u32,
    head: u32,
    head_dim: u32,
    kv_head: u32,
    v_stride: u32,
    eps: f32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: ExplainParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> reference: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

const WG: u32 = 256u;
var<workgroup> partial: array<f32, 256>;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * WG + lid;
}

@compute @workgroup_size(256, 1, 1)
fn fixed_rms_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let row = wid.y * nwg.x + wid.x;
    if (row >= params.rows) {
        return;
    }
    var ss = 0.0;
    for (var c = lid; c < params.cols; c += WG) {
        ss += reference[c] * reference[c];
    }
    partial[lid] = ss;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    let inv = inverseSqrt(partial[0] / f32(params.cols) + params.eps);
    let base = row * params.cols;
    for (var c = lid; c < params.cols; c += WG) {
        y[base + c] = x[base + c] * weight[c] * inv;
    }
}

@compute @workgroup_size(256, 1, 1)
fn scatter_heads(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i >= params.rows * params.cols) {
        return;
    }
    let h = i / params.cols;
    let c = i % params.cols;
    y[i] = select(0.0, x[c], c / params.head_dim == h);
}

@compute @workgroup_size(256, 1, 1)
fn weighted_values(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i >= params.rows * params.cols) {
        return;
    }
    let j = i / params.cols;
    let c = i % params.cols;
    var v = 0.0;
    if (c / params.head_dim == params.head) {
        v = reference[j] * x[j * params.v_stride + params.kv_head * params.head_dim + c % params.head_dim];
    }
    y[i] = v;
}
