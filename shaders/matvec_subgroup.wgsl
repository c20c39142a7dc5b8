// matvec_subgroup.wgsl: linear.wgsl's decode matvec with its partial sums reduced by subgroup
// operations instead of a workgroup tree. Only built where the adapter has subgroups (a shader
// module of its own, so adapters without them never compile it); linear.wgsl:matvec stays the
// fallback and the reference it is tested against.
//
// Entry points
//   matvec_subgroup  Y[row_start + n] = sum_k x[k] * W[n, k]      decode (one activation row)
//
// Threads are numbered by subgroup, v = subgroup_id * subgroup_size + subgroup_invocation_id,
// and v takes the place of the local index in the row/lane layout of common/weights.wgsl. So the
// MV_LANES lanes of a row are whole aligned runs of a subgroup's invocations whatever order the
// driver packs invocations into subgroups (WGSL does not promise local-index order); the only
// assumption is full subgroups of one size, which a 256-thread workgroup gives.
//
// Reduction: a butterfly of subgroupShuffleXor over min(subgroup_size, MV_LANES) lanes; when a
// row has more lanes than a subgroup (MV_LANES > subgroup_size), each subgroup's sum goes through
// workgroup memory and the row's first lanes add them: one barrier instead of log2(MV_LANES) + 1.
//
// Bindings (group 0)
//   0  params  uniform     LinearParams
//   1  x       read        array<vec4<f32>>  x [k] f32
//   2  y       read_write  array<f32>        y [n] f32
//   3  w       read        array<vec4<u32>>  values plane of this block, rows [0, row_count)
//   4  scales  read        array<u32>        scales plane: one f16 per 32 elements (quantised only;
//                                            a dummy word otherwise)
//
// Overrides
//   W_DTYPE, MV_LANES as in linear.wgsl. The bindings, overrides and weight decoding are in
//   common/weights.wgsl, which the host appends to this file (crates/gpu/src/kernels.rs).

// One sum per subgroup; 256 covers subgroups down to a single invocation.
var<workgroup> subgroup_sums: array<vec4<f32>, 256>;

@compute @workgroup_size(256, 1, 1)
fn matvec_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(subgroup_id) sg_id: u32, @builtin(subgroup_size) sg_size: u32,
                   @builtin(subgroup_invocation_id) sg_lane: u32) {
    let v = sg_id * sg_size + sg_lane;
    let row0 = matvec_row0(wid, nwg, v);
    let lane = v % MV_LANES;
    var s = matvec_lane_sums(row0, lane);
    let width = min(sg_size, MV_LANES);
    for (var offset = width / 2u; offset > 0u; offset >>= 1u) {
        s += subgroupShuffleXor(s, offset);
    }
    // Every lane of an aligned run of `width` now holds the run's sum. Runs shorter than a row
    // (MV_LANES > subgroup_size: one run per subgroup) meet in workgroup memory. The barrier is
    // outside any branch: which case applies depends on subgroup_size, which WGSL's uniformity
    // analysis does not treat as uniform.
    if (sg_lane == 0u) {
        subgroup_sums[sg_id] = s;
    }
    workgroupBarrier();
    if (lane < 4u && row0 + lane < params.row_count) {
        var total = s;
        if (MV_LANES > sg_size) {
            let first = (v - lane) / sg_size;
            total = vec4<f32>(0.0);
            for (var i = 0u; i < MV_LANES / sg_size; i++) {
                total += subgroup_sums[first + i];
            }
        }
        y[params.row_start + row0 + lane] = total[lane];
    }
}
