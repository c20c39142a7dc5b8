// attention.wgsl: softmax(Q K^T * scale + mask) V with the probabilities materialised, one
// workgroup of 128 threads per (query row, head). Prefill (n_queries == n_keys) and decode against
// a KV cache (n_queries == 1) are the same kernel: query i sits at position n_keys - n_queries + i.
// Grouped-query attention: head h reads kv head h / (n_heads / n_kv_heads).
//
// Entry points
//   main          the output only
//   main_capture  also writes the probabilities of chosen (row, head) pairs to `pattern` and the
//                 per-head outputs (before o_proj) of chosen pairs to `z`: TransformerLens'
//                 attn.hook_pattern and attn.hook_z restricted to the capture plan's rows/heads.
//   main_segments queries in segments that each continue a shared prefix with keys of their own
//                 (the batched passes of activation patching): row r's segment starts at row
//                 segments[2r] of q / k_own / v_own and continues the first segments[2r + 1]
//                 keys of k / v (the shared KV cache); r attends causally to those and to its
//                 segment's own rows up to itself. n_keys is unused (each row has its own).
//
// Bindings (group 0)
//   0  params        uniform     AttentionParams
//   1  q             read        array<f32>  [n_queries, q_stride], head h at q_offset + h*head_dim
//   2  k             read        array<f32>  [n_keys, k_stride],    kv head at k_offset + g*head_dim
//   3  v             read        array<f32>  [n_keys, v_stride],    kv head at v_offset + g*head_dim
//   4  out           read_write  array<f32>  [n_queries, n_heads * head_dim]
//   5  capture_rows  read        array<u32>  [n_queries]  slot of each query row, or NONE (capture)
//   6  capture_heads read        array<u32>  [n_heads]    slot of each head, or NONE        (capture)
//   7  pattern       read_write  array<f32>  [row slots, head slots, n_keys], masked keys = 0 (capture)
//   8  z             read_write  array<f32>  [row slots, head slots, head_dim]               (capture)
//   9  key_mask      read        array<u32>  [n_keys] 1 = key blocked for queries at positions
//                                            >= mask_from (attention knockout); read only then
//   10  segments     read        array<u32>  [n_queries, 2] (first own row, shared keys)  (segments)
//   11  k_own        read        array<f32>  [n_queries, k_stride]                        (segments)
//   12  v_own        read        array<f32>  [n_queries, v_stride]                        (segments)
//
// Limits: n_keys <= MAX_KEYS and head_dim <= MAX_HEAD_DIM (checked by the host); the score row
// lives in workgroup memory (13.5 KiB, inside WebGPU's 16 KiB baseline).

// AttentionParams, bindings 0-9, WG and NONE are in common/attention.wgsl (shared with
// flash_attention.wgsl), which the host appends to this file (crates/gpu/src/kernels.rs).

const MAX_KEYS: u32 = 3072u;
const MAX_HEAD_DIM: u32 = 256u;

var<workgroup> probs: array<f32, 3072>;
var<workgroup> q_row: array<f32, 256>;
var<workgroup> partial: array<f32, 128>;

struct Task {
    row: u32,
    head: u32,
    kv_head: u32,
    visible: u32,  // keys this query may attend to
}

fn task_of(wid: vec3<u32>, nwg: vec3<u32>) -> Task {
    let g = wid.y * nwg.x + wid.x;
    let row = g / params.n_heads;
    let head = g % params.n_heads;
    var visible = params.n_keys;
    if (params.causal != 0u) {
        visible = params.n_keys - params.n_queries + row + 1u;
    }
    return Task(row, head, head / (params.n_heads / params.n_kv_heads), visible);
}

fn reduce_max(val: f32, lid: u32) -> f32 {
    partial[lid] = val;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            partial[lid] = max(partial[lid], partial[lid + stride]);
        }
        workgroupBarrier();
    }
    let m = partial[0];
    workgroupBarrier();
    return m;
}

fn reduce_sum(val: f32, lid: u32) -> f32 {
    partial[lid] = val;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    let s = partial[0];
    workgroupBarrier();
    return s;
}

// Fills probs[0..t.visible) with the softmax row of (t.row, t.head); f32 throughout, max subtracted.
fn softmax_row(t: Task, lid: u32) {
    let hd = params.head_dim;
    for (var d = lid; d < hd; d += WG) {
        q_row[d] = q[t.row * params.q_stride + params.q_offset + t.head * hd + d];
    }
    workgroupBarrier();
    var m = -3.402823e38;
    let masking = params.n_keys - params.n_queries + t.row >= params.mask_from;
    for (var j = lid; j < t.visible; j += WG) {
        let kb = j * params.k_stride + params.k_offset + t.kv_head * hd;
        var s = 0.0;
        for (var d = 0u; d < hd; d++) {
            s += q_row[d] * k[kb + d];
        }
        s *= params.scale;
        if (masking && key_mask[j] != 0u) {
            s = -3.402823e38; // exp(s - max) underflows to exactly 0
        }
        probs[j] = s;
        m = max(m, s);
    }
    normalise(t.visible, m, lid);
}

// probs[0..visible) holds scores, and each thread's largest in `m`: makes them the softmax.
fn normalise(visible: u32, m: f32, lid: u32) {
    let row_max = reduce_max(m, lid);
    var sum = 0.0;
    for (var j = lid; j < visible; j += WG) {
        let e = exp(probs[j] - row_max);
        probs[j] = e;
        sum += e;
    }
    let total = reduce_sum(sum, lid);
    for (var j = lid; j < visible; j += WG) {
        probs[j] = probs[j] / total;
    }
    workgroupBarrier();
}

// Output element d of (t.row, t.head): sum_j P[j] V[j, d].
fn head_output(t: Task, d: u32) -> f32 {
    let vb = params.v_offset + t.kv_head * params.head_dim + d;
    var o = 0.0;
    for (var j = 0u; j < t.visible; j++) {
        o += probs[j] * v[j * params.v_stride + vb];
    }
    return o;
}

fn out_index(t: Task, d: u32) -> u32 {
    return (t.row * params.n_heads + t.head) * params.head_dim + d;
}

@compute @workgroup_size(128, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let t = task_of(wid, nwg);
    if (t.row >= params.n_queries) {
        return;
    }
    softmax_row(t, lid);
    for (var d = lid; d < params.head_dim; d += WG) {
        out[out_index(t, d)] = head_output(t, d);
    }
}

@compute @workgroup_size(128, 1, 1)
fn main_capture(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let t = task_of(wid, nwg);
    if (t.row >= params.n_queries) {
        return;
    }
    softmax_row(t, lid);
    let row_slot = capture_rows[t.row];
    let head_slot = capture_heads[t.head];
    let captured = row_slot != NONE && head_slot != NONE;
    let slot = row_slot * params.n_head_slots + head_slot;
    if (captured) {
        for (var j = lid; j < params.n_keys; j += WG) {
            pattern[slot * params.n_keys + j] = select(0.0, probs[j], j < t.visible);
        }
    }
    for (var d = lid; d < params.head_dim; d += WG) {
        let o = head_output(t, d);
        out[out_index(t, d)] = o;
        if (captured) {
            z[slot * params.head_dim + d] = o;
        }
    }
}

@group(0) @binding(10) var<storage, read> segments: array<u32>;
@group(0) @binding(11) var<storage, read> k_own: array<f32>;
@group(0) @binding(12) var<storage, read> v_own: array<f32>;

struct SegmentTask {
    row: u32,
    head: u32,
    kv_head: u32,
    own_start: u32,  // the segment's first row in q, k_own and v_own
    prefix: u32,     // keys read from the shared cache (the segment's first position)
    visible: u32,    // prefix + (row - own_start) + 1
}

fn segment_task(wid: vec3<u32>, nwg: vec3<u32>) -> SegmentTask {
    let g = wid.y * nwg.x + wid.x;
    let row = g / params.n_heads;
    let head = g % params.n_heads;
    let kv_head = head / (params.n_heads / params.n_kv_heads);
    if (row >= params.n_queries) {
        return SegmentTask(row, head, kv_head, 0u, 0u, 0u);
    }
    let own_start = segments[2u * row];
    let prefix = segments[2u * row + 1u];
    return SegmentTask(row, head, kv_head, own_start, prefix, prefix + row - own_start + 1u);
}

// Key j of the task's sequence: the shared cache's row j, or its own row j - prefix.
fn segment_score(t: SegmentTask, j: u32) -> f32 {
    let hd = params.head_dim;
    var s = 0.0;
    if (j < t.prefix) {
        let kb = j * params.k_stride + params.k_offset + t.kv_head * hd;
        for (var d = 0u; d < hd; d++) {
            s += q_row[d] * k[kb + d];
        }
    } else {
        let kb = (t.own_start + j - t.prefix) * params.k_stride + params.k_offset + t.kv_head * hd;
        for (var d = 0u; d < hd; d++) {
            s += q_row[d] * k_own[kb + d];
        }
    }
    return s * params.scale;
}

@compute @workgroup_size(128, 1, 1)
fn main_segments(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let t = segment_task(wid, nwg);
    if (t.row >= params.n_queries) {
        return;
    }
    let hd = params.head_dim;
    for (var d = lid; d < hd; d += WG) {
        q_row[d] = q[t.row * params.q_stride + params.q_offset + t.head * hd + d];
    }
    workgroupBarrier();
    var m = -3.402823e38;
    for (var j = lid; j < t.visible; j += WG) {
        let s = segment_score(t, j);
        probs[j] = s;
        m = max(m, s);
    }
    normalise(t.visible, m, lid);
    for (var d = lid; d < hd; d += WG) {
        let col = params.v_offset + t.kv_head * hd + d;
        var o = 0.0;
        for (var j = 0u; j < t.prefix; j++) {
            o += probs[j] * v[j * params.v_stride + col];
        }
        for (var j = t.prefix; j < t.visible; j++) {
            o += probs[j] * v_own[(t.own_start + j - t.prefix) * params.v_stride + col];
        }
        out[out_index(Task(t.row, t.head, t.kv_head, t.visible), d)] = o;
    }
}
