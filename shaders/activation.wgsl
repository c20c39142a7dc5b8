// activation.wgsl: pointwise activations.
//
// Entry points
//   gelu        x = 0.5 x (1 + erf(x / sqrt 2))     in place, i < n   (Llava projector, exact GELU)
//   quick_gelu  x = x * sigmoid(1.702 x)            in place, i < n   (CLIP MLP)
//   gelu_tanh   x = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))   in place   (SigLIP MLP)
//   silu_mul    y[r, c] = silu(x[r, c]) * x[r, cols + c]   r < n / cols   (LLaMA MLP on the fused
//               gate|up output [rows, 2 cols])
//
// Bindings (group 0)
//   0  params  uniform     ActivationParams
//   1  x       read_write  array<f32>  [n] (gelu, quick_gelu) or [rows, 2 cols] (silu_mul, read only)
//   2  y       read_write  array<f32>  [rows, cols] (silu_mul only)

struct ActivationParams {
    n: u32,     // elements to produce
    cols: u32,  // silu_mul: columns of y (half a row of x)
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: ActivationParams;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid;
}

// erf in f32 with the rational approximations of fdlibm's s_erff.c (|error| about 1 ulp before
// the GPU's exp), since WGSL has no erf. Same intervals: |v| < 0.84375, < 1.25, < 1/0.35, < 6.
fn erf_f32(v: f32) -> f32 {
    let a = abs(v);
    if (a < 0.84375) {
        let z = a * a;
        let p = 1.2837916613e-01 + z * (-3.2504209876e-01 + z * (-2.8481749818e-02 + z * (-5.7702702470e-03 + z * -2.3763017452e-05)));
        let q = 1.0 + z * (3.9791721106e-01 + z * (6.5022252500e-02 + z * (5.0813062117e-03 + z * (1.3249473704e-04 + z * -3.9602282413e-06))));
        return v + v * (p / q);
    }
    var r: f32;
    if (a < 1.25) {
        let s = a - 1.0;
        let p = -2.3621185683e-03 + s * (4.1485610604e-01 + s * (-3.7220788002e-01 + s * (3.1834661961e-01 + s * (-1.1089469492e-01 + s * (3.5478305072e-02 + s * -2.1663755178e-03)))));
        let q = 1.0 + s * (1.0642088205e-01 + s * (5.4039794207e-01 + s * (7.1828655899e-02 + s * (1.2617121637e-01 + s * (1.3637083583e-02 + s * 1.1984500103e-02)))));
        r = 8.4506291151e-01 + p / q;
    } else if (a < 6.0) {
        // erfc(a) = exp(-a^2 - 0.5625 + R(1/a^2) / S(1/a^2)) / a
        let s = 1.0 / (a * a);
        var rr: f32;
        var ss: f32;
        if (a < 2.857142857) {
            rr = -9.8649440333e-03 + s * (-6.9385856390e-01 + s * (-1.0558626175e+01 + s * (-6.2375331879e+01 + s * (-1.6239666748e+02 + s * (-1.8460508728e+02 + s * (-8.1287437439e+01 + s * -9.8143291473e+00))))));
            ss = 1.0 + s * (1.9651271820e+01 + s * (1.3765776062e+02 + s * (4.3456588745e+02 + s * (6.4538726807e+02 + s * (4.2900814819e+02 + s * (1.0863500214e+02 + s * (6.5702495575e+00 + s * -6.0424413532e-02)))))));
        } else {
            rr = -9.8649431020e-03 + s * (-7.9928326607e-01 + s * (-1.7757955551e+01 + s * (-1.6063638306e+02 + s * (-6.3756646729e+02 + s * (-1.0250950928e+03 + s * -4.8351919556e+02)))));
            ss = 1.0 + s * (3.0338060379e+01 + s * (3.2579251099e+02 + s * (1.5367296143e+03 + s * (3.1998581543e+03 + s * (2.5530502930e+03 + s * (4.7452853394e+02 + s * -2.2440952301e+01))))));
        }
        // Split a so that exp(-a^2) keeps its accuracy (as fdlibm does).
        let zh = bitcast<f32>(bitcast<u32>(a) & 0xffffe000u);
        let e = exp(-zh * zh - 0.5625) * exp((zh - a) * (zh + a) + rr / ss);
        r = 1.0 - e / a;
    } else {
        r = 1.0;
    }
    return select(r, -r, v < 0.0);
}

@compute @workgroup_size(256, 1, 1)
fn gelu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < params.n) {
        let v = x[i];
        x[i] = 0.5 * v * (1.0 + erf_f32(v * 0.70710678118654752));
    }
}

@compute @workgroup_size(256, 1, 1)
fn quick_gelu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < params.n) {
        let v = x[i];
        x[i] = v / (1.0 + exp(-1.702 * v));
    }
}

// 0.5 (1 + tanh(u)) is sigmoid(2u): written so, it needs no tanh (whose naive form overflows
// for large |u|) and saturates cleanly to 0 and 1.
@compute @workgroup_size(256, 1, 1)
fn gelu_tanh(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < params.n) {
        let v = x[i];
        let u = 0.7978845608028654 * (v + 0.044715 * v * v * v);
        x[i] = v / (1.0 + exp(-2.0 * u));
    }
}

@compute @workgroup_size(256, 1, 1)
fn silu_mul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < params.n) {
        let r = i / params.cols;
        let c = i % params.cols;
        let g = x[r * 2u * params.cols + c];
        let u = x[r * 2u * params.cols + params.cols + c];
        y[i] = g / (1.0 + exp(-g)) * u;
    }
}
