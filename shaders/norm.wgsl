// norm.wgsl: row normalisations, one workgroup of 256 threads per row, sums in f32 through a
// workgroup-memory tree (a row is at most a few thousand elements).
//
// Entry points
//   rms_norm    y = weight * (x / sqrt(mean(x^2) + eps))                 (LlamaRMSNorm)
//   layer_norm  y = (x - mean) / sqrt(var + eps) * weight + bias, var biased (nn.LayerNorm)
//
// Bindings (group 0)
//   0  params  uniform     NormParams
//   1  x       read        array<f32>  [rows, cols]
//   2  weight  read        array<f32>  [cols]
//   3  bias    read        array<f32>  [cols] (layer_norm only)
//   4  y       read_write  array<f32>  [rows, cols]

struct NormParams {
    rows: u32,
    cols: u32,
    eps: f32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: NormParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

const WG: u32 = 256u;
var<workgroup> partial: array<f32, 256>;

// Sum of `v` over the workgroup; every thread gets the result.
fn workgroup_sum(v: f32, lid: u32) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

fn row_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

@compute @workgroup_size(256, 1, 1)
fn rms_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let row = row_index(wid, nwg);
    if (row >= params.rows) {
        return;
    }
    let base = row * params.cols;
    var ss = 0.0;
    for (var c = lid; c < params.cols; c += WG) {
        let v = x[base + c];
        ss += v * v;
    }
    let inv = inverseSqrt(workgroup_sum(ss, lid) / f32(params.cols) + params.eps);
    for (var c = lid; c < params.cols; c += WG) {
        y[base + c] = weight[c] * (x[base + c] * inv);
    }
}

@compute @workgroup_size(256, 1, 1)
fn layer_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let row = row_index(wid, nwg);
    if (row >= params.rows) {
        return;
    }
    let base = row * params.cols;
    let n = f32(params.cols);
    var s = 0.0;
    for (var c = lid; c < params.cols; c += WG) {
        s += x[base + c];
    }
    let mean = workgroup_sum(s, lid) / n;
    // Second pass over (x - mean)^2: the one-pass E[x^2] - mean^2 cancels badly for large means.
    var sq = 0.0;
    for (var c = lid; c < params.cols; c += WG) {
        let d = x[base + c] - mean;
        sq += d * d;
    }
    let inv = inverseSqrt(workgroup_sum(sq, lid) / n + params.eps);
    for (var c = lid; c < params.cols; c += WG) {
        y[base + c] = (x[base + c] - mean) * inv * weight[c] + bias[c];
    }
}
