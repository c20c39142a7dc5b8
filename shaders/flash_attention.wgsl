// flash_attention.wgsl: softmax(Q K^T * scale + mask) V without materialising the scores, for
// any number of keys: a workgroup of 128 threads takes 8 query rows of one head and walks the
// keys in tiles of 16, keeping each row's running max, running sum and output in registers
// (online softmax). K and V tiles are staged in workgroup memory and shared by the 8 rows, so a
// head's keys and values are read once per 8 queries instead of once per query. Grouped-query
// attention: head h reads kv head h / (n_heads / n_kv_heads). Query i sits at position
// n_keys - n_queries + i, as in attention.wgsl.
//
// Entry points
//   flash          the output of every query row (thread (r, c) of the workgroup: row r of the
//                  8, lane c of 16; it scores key c of each tile and owns output columns
//                  c, c + 16, ...)
//   flash_capture  the probabilities and per-head output of the captured (row, head) pairs
//                  (attn.hook_pattern, attn.hook_z), one workgroup each: the scores are staged
//                  in the pattern buffer itself, so any number of keys fits
//   decode_split   one query (decode) with its keys split across workgroups: a workgroup per
//                  (head, chunk of 128 keys) writes the chunk's max, sum and unnormalised
//                  output to `partial`
//   decode_combine a workgroup per head merges its chunks' partials into the output
//
// Bindings (group 0)
//   0  params        uniform     AttentionParams (n_row_slots and n_head_slots: flash_capture)
//   1  q             read        array<f32>  [n_queries, q_stride], head h at q_offset + h*head_dim
//   2  k             read        array<f32>  [n_keys, k_stride],    kv head at k_offset + g*head_dim
//   3  v             read        array<f32>  [n_keys, v_stride],    kv head at v_offset + g*head_dim
//   4  out           read_write  array<f32>  [n_queries, n_heads * head_dim]                    (flash)
//   5  capture_rows  read        array<u32>  [row slots]  the query row of each slot            (flash_capture)
//   6  capture_heads read        array<u32>  [n_heads]    slot of each head, or NONE            (flash_capture)
//   7  pattern       read_write  array<f32>  [row slots, head slots, n_keys], masked keys = 0   (flash_capture)
//   8  z             read_write  array<f32>  [row slots, head slots, head_dim]                  (flash_capture)
//   9  key_mask      read        array<u32>  [n_keys] 1 = key blocked for queries at positions
//                                            >= mask_from (attention knockout); read only then
//   10  partial      read_write  array<f32>  [n_heads, chunks, head_dim + 2]: (max, sum, output)
//                                            per chunk                                     (decode_*)
//
// Limits: head_dim <= 128 for flash, <= 256 for the rest (checked by the host; attention.wgsl
// serves larger heads).

// AttentionParams, bindings 0-9, WG and NONE are in common/attention.wgsl (shared with
// attention.wgsl), which the host appends to this file (crates/gpu/src/kernels.rs).

@group(0) @binding(10) var<storage, read_write> partial: array<f32>;

const ROWS: u32 = 8u;     // query rows per workgroup
const KEYS: u32 = 16u;    // keys per tile (= lanes per row)
const MAX_HD: u32 = 128u;
const COLS: u32 = 8u;     // output columns per thread: MAX_HD / KEYS
const LOWEST: f32 = -3.402823e38;

// 12.5 KiB: inside WebGPU's 16 KiB baseline.
var<workgroup> q_tile: array<f32, 1024>;   // ROWS x MAX_HD
var<workgroup> kv_tile: array<f32, 2048>;  // KEYS x MAX_HD, keys then values
var<workgroup> scores: array<f32, 128>;    // ROWS x KEYS; flash_capture: reductions

// Keys query row `row` may see (rows past n_queries see all keys: they are never written).
fn visible_of(row: u32) -> u32 {
    if (params.causal != 0u) {
        return min(params.n_keys - params.n_queries + row + 1u, params.n_keys);
    }
    return params.n_keys;
}

// Key j counts for a query that sees `visible` keys and honours the key mask if `masking`.
fn key_valid(j: u32, visible: u32, masking: bool) -> bool {
    return j < visible && !(masking && key_mask[j] != 0u);
}

fn masking_of(row: u32) -> bool {
    return params.n_keys - params.n_queries + row >= params.mask_from;
}

// Stages rows t0.. of k (which = 0) or v (which = 1) for kv head g into kv_tile (0 past n_keys).
fn stage_tile(t0: u32, g: u32, which: u32, lid: u32) {
    let hd = params.head_dim;
    for (var i = lid; i < KEYS * hd; i += WG) {
        let j = t0 + i / hd;
        let d = i % hd;
        var val = 0.0;
        if (j < params.n_keys) {
            if (which == 0u) {
                val = k[j * params.k_stride + params.k_offset + g * hd + d];
            } else {
                val = v[j * params.v_stride + params.v_offset + g * hd + d];
            }
        }
        kv_tile[(i / hd) * MAX_HD + d] = val;
    }
}

@compute @workgroup_size(128, 1, 1)
fn flash(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let g = wid.y * nwg.x + wid.x;
    let head = g % params.n_heads;
    let q0 = (g / params.n_heads) * ROWS;
    if (q0 >= params.n_queries) {
        return;
    }
    let hd = params.head_dim;
    let kv_head = head / (params.n_heads / params.n_kv_heads);
    let r = lid / KEYS;
    let c = lid % KEYS;
    let row = q0 + r;
    for (var i = lid; i < ROWS * hd; i += WG) {
        let rr = q0 + i / hd;
        var val = 0.0;
        if (rr < params.n_queries) {
            val = q[rr * params.q_stride + params.q_offset + head * hd + i % hd];
        }
        q_tile[(i / hd) * MAX_HD + i % hd] = val;
    }
    // The same for every thread: the keys the workgroup's last live row sees.
    let keys_end = visible_of(min(q0 + ROWS, params.n_queries) - 1u);
    let visible = visible_of(row);
    let masking = masking_of(row);
    var m = LOWEST;
    var l = 0.0;
    var o: array<f32, 8>;
    var p: array<f32, 16>;
    for (var t0 = 0u; t0 < keys_end; t0 += KEYS) {
        workgroupBarrier();
        stage_tile(t0, kv_head, 0u, lid);
        workgroupBarrier();
        var s = 0.0;
        for (var d = 0u; d < hd; d++) {
            s += q_tile[r * MAX_HD + d] * kv_tile[c * MAX_HD + d];
        }
        scores[r * KEYS + c] = s * params.scale;
        workgroupBarrier();
        // Every lane of a row updates the row's running max and sum alike.
        var tile_max = m;
        for (var jj = 0u; jj < KEYS; jj++) {
            if (key_valid(t0 + jj, visible, masking)) {
                tile_max = max(tile_max, scores[r * KEYS + jj]);
            }
        }
        let alpha = exp(m - tile_max);
        var sum = 0.0;
        for (var jj = 0u; jj < KEYS; jj++) {
            var e = 0.0;
            if (key_valid(t0 + jj, visible, masking)) {
                e = exp(scores[r * KEYS + jj] - tile_max);
            }
            p[jj] = e;
            sum += e;
        }
        l = l * alpha + sum;
        m = tile_max;
        workgroupBarrier();
        stage_tile(t0, kv_head, 1u, lid);
        workgroupBarrier();
        for (var i = 0u; i < COLS; i++) {
            let d = c + i * KEYS;
            if (d < hd) {
                var acc = o[i] * alpha;
                for (var jj = 0u; jj < KEYS; jj++) {
                    acc += p[jj] * kv_tile[jj * MAX_HD + d];
                }
                o[i] = acc;
            }
        }
    }
    if (row < params.n_queries) {
        for (var i = 0u; i < COLS; i++) {
            let d = c + i * KEYS;
            if (d < hd) {
                out[(row * params.n_heads + head) * hd + d] = o[i] / l;
            }
        }
    }
}

fn reduce(val: f32, lid: u32, is_max: bool) -> f32 {
    scores[lid] = val;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            if (is_max) {
                scores[lid] = max(scores[lid], scores[lid + stride]);
            } else {
                scores[lid] += scores[lid + stride];
            }
        }
        workgroupBarrier();
    }
    let res = scores[0];
    workgroupBarrier();
    return res;
}

@compute @workgroup_size(128, 1, 1)
fn flash_capture(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let g = wid.y * nwg.x + wid.x;
    let slot = g / params.n_heads;
    let head = g % params.n_heads;
    if (slot >= params.n_row_slots || capture_heads[head] == NONE) {
        return;
    }
    let hd = params.head_dim;
    let kv_head = head / (params.n_heads / params.n_kv_heads);
    let row = capture_rows[slot];
    let visible = visible_of(row);
    let masking = masking_of(row);
    let base = (slot * params.n_head_slots + capture_heads[head]) * params.n_keys;
    for (var d = lid; d < hd; d += WG) {
        q_tile[d] = q[row * params.q_stride + params.q_offset + head * hd + d];
    }
    workgroupBarrier();
    var m = LOWEST;
    for (var j = lid; j < visible; j += WG) {
        var s = 0.0;
        let kb = j * params.k_stride + params.k_offset + kv_head * hd;
        for (var d = 0u; d < hd; d++) {
            s += q_tile[d] * k[kb + d];
        }
        s *= params.scale;
        pattern[base + j] = s;
        if (key_valid(j, visible, masking)) {
            m = max(m, s);
        }
    }
    let row_max = reduce(m, lid, true);
    var sum = 0.0;
    for (var j = lid; j < params.n_keys; j += WG) {
        var e = 0.0;
        if (key_valid(j, visible, masking)) {
            e = exp(pattern[base + j] - row_max);
        }
        pattern[base + j] = e;
        sum += e;
    }
    let total = reduce(sum, lid, false);
    for (var j = lid; j < params.n_keys; j += WG) {
        pattern[base + j] = pattern[base + j] / total;
    }
    storageBarrier();
    let zb = (slot * params.n_head_slots + capture_heads[head]) * hd;
    for (var d = lid; d < hd; d += WG) {
        let col = params.v_offset + kv_head * hd + d;
        var acc = 0.0;
        for (var j = 0u; j < visible; j++) {
            acc += pattern[base + j] * v[j * params.v_stride + col];
        }
        z[zb + d] = acc;
    }
}

const CHUNK: u32 = 128u;  // keys per decode_split workgroup (one per thread)
const MAX_HD_DECODE: u32 = 256u;

@compute @workgroup_size(128, 1, 1)
fn decode_split(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let g = wid.y * nwg.x + wid.x;
    let chunks = (params.n_keys + CHUNK - 1u) / CHUNK;
    let head = g / chunks;
    let chunk = g % chunks;
    if (head >= params.n_heads) {
        return;
    }
    let hd = params.head_dim;
    let kv_head = head / (params.n_heads / params.n_kv_heads);
    // The one query (row 0) sits at the last position and sees every key.
    let visible = params.n_keys;
    let masking = masking_of(0u);
    for (var d = lid; d < hd; d += WG) {
        kv_tile[d] = q[params.q_offset + head * hd + d];
    }
    workgroupBarrier();
    let j = chunk * CHUNK + lid;
    let valid = key_valid(j, visible, masking);
    var s = LOWEST;
    if (valid) {
        var acc = 0.0;
        let kb = j * params.k_stride + params.k_offset + kv_head * hd;
        for (var d = 0u; d < hd; d++) {
            acc += kv_tile[d] * k[kb + d];
        }
        s = acc * params.scale;
    }
    let m = reduce(s, lid, true);
    var e = 0.0;
    if (valid) {
        e = exp(s - m);
    }
    let l = reduce(e, lid, false);
    // The chunk's weights for the value sum, beside the query (kv_tile[MAX_HD_DECODE..]).
    kv_tile[MAX_HD_DECODE + lid] = e;
    workgroupBarrier();
    let base = (head * chunks + chunk) * (hd + 2u);
    let end = min(CHUNK, params.n_keys - chunk * CHUNK);
    for (var d = lid; d < hd; d += WG) {
        let col = params.v_offset + kv_head * hd + d;
        var acc = 0.0;
        for (var jj = 0u; jj < end; jj++) {
            acc += kv_tile[MAX_HD_DECODE + jj] * v[(chunk * CHUNK + jj) * params.v_stride + col];
        }
        partial[base + 2u + d] = acc;
    }
    if (lid == 0u) {
        partial[base] = m;
        partial[base + 1u] = l;
    }
}

@compute @workgroup_size(128, 1, 1)
fn decode_combine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let head = wid.y * nwg.x + wid.x;
    if (head >= params.n_heads) {
        return;
    }
    let hd = params.head_dim;
    let chunks = (params.n_keys + CHUNK - 1u) / CHUNK;
    let stride = hd + 2u;
    var m = LOWEST;
    for (var c = 0u; c < chunks; c++) {
        let mc = partial[(head * chunks + c) * stride];
        if (partial[(head * chunks + c) * stride + 1u] > 0.0) {
            m = max(m, mc);
        }
    }
    var l = 0.0;
    for (var c = 0u; c < chunks; c++) {
        let b = (head * chunks + c) * stride;
        if (partial[b + 1u] > 0.0) {
            l += partial[b + 1u] * exp(partial[b] - m);
        }
    }
    for (var d = lid; d < hd; d += WG) {
        var o = 0.0;
        for (var c = 0u; c < chunks; c++) {
            let b = (head * chunks + c) * stride;
            if (partial[b + 1u] > 0.0) {
                o += partial[b + 2u + d] * exp(partial[b] - m);
            }
        }
        out[head * hd + d] = o / l;
    }
}
