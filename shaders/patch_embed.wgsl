// patch_embed.wgsl: the gather half of CLIP's patch embedding (Conv2d kernel = stride = patch,
// no bias) done as im2col + matmul; the matmul is linear.wgsl's `matmul` against the conv weight
// flattened to [hidden, channels * patch * patch].
//
// Entry point
//   im2col  cols[p, (c * patch + ky) * patch + kx] = pixels[c, (p / grid_w) * patch + ky,
//                                                             (p % grid_w) * patch + kx]
//
// Bindings (group 0)
//   0  params  uniform     PatchParams
//   1  pixels  read        array<f32>  [channels, height, width] (normalised CHW image)
//   2  cols    read_write  array<f32>  [n_patches, channels * patch * patch]

struct PatchParams {
    channels: u32,
    height: u32,
    width: u32,
    patch_size: u32,
    grid_w: u32,
    n_patches: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: PatchParams;
@group(0) @binding(1) var<storage, read> pixels: array<f32>;
@group(0) @binding(2) var<storage, read_write> cols: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn im2col(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * nwg.x + wid.x) * 256u + lid;
    let pp = params.patch_size * params.patch_size;
    let patch_len = params.channels * pp;
    if (i >= params.n_patches * patch_len) {
        return;
    }
    let p = i / patch_len;
    let e = i % patch_len;
    let c = e / pp;
    let ky = (e % pp) / params.patch_size;
    let kx = e % params.patch_size;
    let py = (p / params.grid_w) * params.patch_size + ky;
    let px = (p % params.grid_w) * params.patch_size + kx;
    cols[i] = pixels[(c * params.height + py) * params.width + px];
}
