// add.wgsl: in-place additions on f32 activations.
//
// Entry points
//   residual_add  a[i] += b[i]                     i < n            (residual connections)
//   bias_add      a[r * cols + c] += b[c]          r < n / cols     (nn.Linear bias)
//   blend_columns a[r * cols + c] = a[r * cols + c] * b[c] + b[cols + c]
//                                                  r < n / cols     (head ablation: keep 0 or 1,
//                                                                    then the fill value)
//
// Bindings (group 0)
//   0  params  uniform     AddParams
//   1  a       read_write  array<f32>  [n]
//   2  b       read        array<f32>  [n] (residual_add), [cols] (bias_add) or
//                                      [2 * cols] (blend_columns: keep, then fill)

struct AddParams {
    n: u32,     // elements of a
    cols: u32,  // row length for bias_add
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: AddParams;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid;
}

@compute @workgroup_size(256, 1, 1)
fn residual_add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < params.n) {
        a[i] += b[i];
    }
}

@compute @workgroup_size(256, 1, 1)
fn bias_add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < params.n) {
        a[i] += b[i % params.cols];
    }
}

// Multiplying by exactly 1.0 and adding exactly 0.0 leaves a kept column bit-identical; a removed
// column (keep 0.0) becomes exactly its fill value.
@compute @workgroup_size(256, 1, 1)
fn blend_columns(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < params.n) {
        let c = i % params.cols;
        a[i] = a[i] * b[c] + b[params.cols + c];
    }
}
