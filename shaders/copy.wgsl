// copy.wgsl: device-local copy of f32 data, 16 bytes per thread.
//
// Entry point
//   copy  dst[i] = src[i] for i < n (n a multiple of 4). Used to move activations (KV-cache rows)
//         and by `llava-lens bench` as the memory-bandwidth ceiling: unlike copy_buffer_to_buffer,
//         which some drivers run on a DMA engine at a fraction of DRAM bandwidth, this runs where
//         the kernels run.
//
// Bindings (group 0)
//   0  params  uniform     CopyParams
//   1  src     read        array<vec4<f32>>  [n / 4]
//   2  dst     read_write  array<vec4<f32>>  [n / 4]

struct CopyParams {
    n: u32,  // f32 elements, a multiple of 4
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: CopyParams;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(256, 1, 1)
fn copy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * nwg.x + wid.x) * 256u + lid;
    if (i < params.n / 4u) {
        dst[i] = src[i];
    }
}
