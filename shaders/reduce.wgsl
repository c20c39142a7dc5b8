// reduce.wgsl: reductions over long rows (a vocabulary of 32064 logits), one workgroup of 256
// threads per row.
//
// Entry points
//   top_k               the k largest values of each row, best first; equal values by lower
//                       index (torch.topk order on ties is unspecified; this one is fixed).
//                       argmax is top_k with k = 1.
//   log_softmax_gather  out[r, j] = x[r, idx[r, j]] - logsumexp(x[r, :]): the log-probability of
//                       chosen tokens for many rows at once (the explanation's scores).
//   token_rank          out_indices[r, j] = 1 + #{i : x[r, i] > x[r, idx[r, j]]}: where chosen
//                       tokens stand in each row (1 = top; equal values share the better rank;
//                       an index outside the row gives 0xffffffff). The information-storage
//                       analysis ranks a colour or object word in many projected vectors.
//
// Bindings (group 0)
//   0  params       uniform     ReduceParams
//   1  x            read        array<f32>  [rows, n]
//   2  indices      read        array<u32>  [rows, m]      (log_softmax_gather)
//   3  out          read_write  array<f32>  [rows, k | m]  values (top_k) or log-probabilities
//   4  out_indices  read_write  array<u32>  [rows, k | m]  indices (top_k) or ranks (token_rank)

struct ReduceParams {
    rows: u32,
    n: u32,   // row length
    k: u32,   // top_k: values kept per row; log_softmax_gather, token_rank: indices per row (m)
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: ReduceParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> indices: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> out_indices: array<u32>;

const WG: u32 = 256u;
const NONE: u32 = 0xffffffffu;

var<workgroup> best_val: array<f32, 256>;
var<workgroup> best_idx: array<u32, 256>;

fn row_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

// (va, ia) ranks before (vb, ib): larger value, then lower index. NONE ranks last.
fn ranks_before(va: f32, ia: u32, vb: f32, ib: u32) -> bool {
    if (ia == NONE) {
        return false;
    }
    if (ib == NONE) {
        return true;
    }
    return va > vb || (va == vb && ia < ib);
}

@compute @workgroup_size(256, 1, 1)
fn top_k(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let row = row_index(wid, nwg);
    if (row >= params.rows) {
        return;
    }
    let base = row * params.n;
    // Round r finds the best element ranking after the one found in round r - 1.
    var prev_val = 0.0;
    var prev_idx = NONE;
    for (var r = 0u; r < params.k; r++) {
        var bv = 0.0;
        var bi = NONE;
        for (var i = lid; i < params.n; i += WG) {
            let val = x[base + i];
            let after_prev = prev_idx == NONE || ranks_before(prev_val, prev_idx, val, i);
            if (after_prev && ranks_before(val, i, bv, bi)) {
                bv = val;
                bi = i;
            }
        }
        best_val[lid] = bv;
        best_idx[lid] = bi;
        workgroupBarrier();
        for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
            if (lid < stride && ranks_before(best_val[lid + stride], best_idx[lid + stride], best_val[lid], best_idx[lid])) {
                best_val[lid] = best_val[lid + stride];
                best_idx[lid] = best_idx[lid + stride];
            }
            workgroupBarrier();
        }
        prev_val = best_val[0];
        prev_idx = best_idx[0];
        if (lid == 0u) {
            out[row * params.k + r] = prev_val;
            out_indices[row * params.k + r] = prev_idx;
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(256, 1, 1)
fn log_softmax_gather(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let row = row_index(wid, nwg);
    if (row >= params.rows) {
        return;
    }
    let base = row * params.n;
    var m = -3.402823e38;
    for (var i = lid; i < params.n; i += WG) {
        m = max(m, x[base + i]);
    }
    best_val[lid] = m;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            best_val[lid] = max(best_val[lid], best_val[lid + stride]);
        }
        workgroupBarrier();
    }
    let row_max = best_val[0];
    workgroupBarrier();
    var s = 0.0;
    for (var i = lid; i < params.n; i += WG) {
        s += exp(x[base + i] - row_max);
    }
    best_val[lid] = s;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            best_val[lid] += best_val[lid + stride];
        }
        workgroupBarrier();
    }
    let lse = row_max + log(best_val[0]);
    for (var j = lid; j < params.k; j += WG) {
        let i = indices[row * params.k + j];
        // An index outside the row yields NaN rather than another row's value. The NaN is built
        // from a runtime value: a constant NaN is a shader-creation error in browsers (Tint).
        let nan = bitcast<f32>(0x7fc00000u | (i & 0u));
        out[row * params.k + j] = select(nan, x[base + i] - lse, i < params.n);
    }
}

var<workgroup> counts: array<u32, 256>;

@compute @workgroup_size(256, 1, 1)
fn token_rank(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let row = row_index(wid, nwg);
    if (row >= params.rows) {
        return;
    }
    let base = row * params.n;
    // One pass over the row per chosen token: m is a handful (a correct and a random word).
    for (var j = 0u; j < params.k; j++) {
        let t = indices[row * params.k + j];
        let inside = t < params.n;
        let v = x[base + min(t, params.n - 1u)];
        var above = 0u;
        for (var i = lid; i < params.n; i += WG) {
            above += select(0u, 1u, x[base + i] > v);
        }
        counts[lid] = above;
        workgroupBarrier();
        for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
            if (lid < stride) {
                counts[lid] += counts[lid + stride];
            }
            workgroupBarrier();
        }
        if (lid == 0u) {
            out_indices[row * params.k + j] = select(NONE, counts[0] + 1u, inside);
        }
        workgroupBarrier();
    }
}
