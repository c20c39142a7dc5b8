//! The registry of shaders: the only place that includes `shaders/*.wgsl`, and the binding table
//! of every entry point (the Rust side of each shader's header comment). Tests check the tables
//! against what naga reads from the WGSL.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    Linear,
    MatvecSubgroup,
    MatmulK32,
    MatmulF16,
    MatvecDot4,
    Add,
    Activation,
    Norm,
    Rope,
    Attention,
    FlashAttention,
    PatchEmbed,
    Reduce,
    Copy,
    Explain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Uniform,
    Read,
    ReadWrite,
}

/// An entry point and the bindings (index, access) of its group 0, in index order.
#[derive(Debug, Clone, Copy)]
pub struct EntryPoint {
    pub name: &'static str,
    pub bindings: &'static [(u32, Access)],
}

use Access::{Read, ReadWrite, Uniform};

/// A shader with a shared part of `shaders/common/` appended (WGSL has no includes; the file
/// comes first so that its header and any `enable` directive open the module): the decoding of
/// weights for every weight reader, the parameters and bindings for both attention shaders.
macro_rules! with_common {
    ($file:literal, $common:literal) => {
        concat!(include_str!(concat!("../../../shaders/", $file)), include_str!(concat!("../../../shaders/common/", $common)))
    };
}

macro_rules! weight_reader {
    ($file:literal) => {
        with_common!($file, "weights.wgsl")
    };
}

impl Kernel {
    pub const ALL: [Kernel; 15] = [
        Kernel::Linear,
        Kernel::MatvecSubgroup,
        Kernel::MatmulK32,
        Kernel::MatmulF16,
        Kernel::MatvecDot4,
        Kernel::Add,
        Kernel::Activation,
        Kernel::Norm,
        Kernel::Rope,
        Kernel::Attention,
        Kernel::FlashAttention,
        Kernel::PatchEmbed,
        Kernel::Reduce,
        Kernel::Copy,
        Kernel::Explain,
    ];

    pub fn file(self) -> &'static str {
        match self {
            Kernel::Linear => "linear.wgsl",
            Kernel::MatvecSubgroup => "matvec_subgroup.wgsl",
            Kernel::MatmulK32 => "matmul_k32.wgsl",
            Kernel::MatmulF16 => "matmul_f16.wgsl",
            Kernel::MatvecDot4 => "matvec_dot4.wgsl",
            Kernel::Add => "add.wgsl",
            Kernel::Activation => "activation.wgsl",
            Kernel::Norm => "norm.wgsl",
            Kernel::Rope => "rope.wgsl",
            Kernel::Attention => "attention.wgsl",
            Kernel::FlashAttention => "flash_attention.wgsl",
            Kernel::PatchEmbed => "patch_embed.wgsl",
            Kernel::Reduce => "reduce.wgsl",
            Kernel::Copy => "copy.wgsl",
            Kernel::Explain => "explain.wgsl",
        }
    }

    pub fn source(self) -> &'static str {
        match self {
            Kernel::Linear => weight_reader!("linear.wgsl"),
            Kernel::MatvecSubgroup => weight_reader!("matvec_subgroup.wgsl"),
            Kernel::MatmulK32 => weight_reader!("matmul_k32.wgsl"),
            Kernel::MatmulF16 => weight_reader!("matmul_f16.wgsl"),
            Kernel::MatvecDot4 => weight_reader!("matvec_dot4.wgsl"),
            Kernel::Add => include_str!("../../../shaders/add.wgsl"),
            Kernel::Activation => include_str!("../../../shaders/activation.wgsl"),
            Kernel::Norm => include_str!("../../../shaders/norm.wgsl"),
            Kernel::Rope => include_str!("../../../shaders/rope.wgsl"),
            Kernel::Attention => with_common!("attention.wgsl", "attention.wgsl"),
            Kernel::FlashAttention => with_common!("flash_attention.wgsl", "attention.wgsl"),
            Kernel::PatchEmbed => include_str!("../../../shaders/patch_embed.wgsl"),
            Kernel::Reduce => include_str!("../../../shaders/reduce.wgsl"),
            Kernel::Copy => include_str!("../../../shaders/copy.wgsl"),
            Kernel::Explain => include_str!("../../../shaders/explain.wgsl"),
        }
    }

    /// The WGSL name of the uniform struct at binding 0 (mirrored in [`crate::params`]).
    pub fn params_struct(self) -> &'static str {
        match self {
            Kernel::Linear | Kernel::MatvecSubgroup | Kernel::MatmulK32 | Kernel::MatmulF16 | Kernel::MatvecDot4 => "LinearParams",
            Kernel::Add => "AddParams",
            Kernel::Activation => "ActivationParams",
            Kernel::Norm => "NormParams",
            Kernel::Rope => "RopeParams",
            Kernel::Attention | Kernel::FlashAttention => "AttentionParams",
            Kernel::PatchEmbed => "PatchParams",
            Kernel::Reduce => "ReduceParams",
            Kernel::Copy => "CopyParams",
            Kernel::Explain => "ExplainParams",
        }
    }

    pub fn entry_points(self) -> &'static [EntryPoint] {
        const LINEAR_GEMM: &[(u32, Access)] = &[(0, Uniform), (1, Read), (2, ReadWrite), (3, Read), (4, Read)];
        const IN_PLACE_WITH_INPUT: &[(u32, Access)] = &[(0, Uniform), (1, ReadWrite), (2, Read)];
        const IN_PLACE: &[(u32, Access)] = &[(0, Uniform), (1, ReadWrite)];
        const ATTENTION: &[(u32, Access)] = &[(0, Uniform), (1, Read), (2, Read), (3, Read), (4, ReadWrite), (9, Read)];
        const ATTENTION_CAPTURE: &[(u32, Access)] = &[
            (0, Uniform),
            (1, Read),
            (2, Read),
            (3, Read),
            (4, ReadWrite),
            (5, Read),
            (6, Read),
            (7, ReadWrite),
            (8, ReadWrite),
            (9, Read),
        ];
        match self {
            Kernel::Linear => &[
                EntryPoint { name: "matmul", bindings: LINEAR_GEMM },
                EntryPoint { name: "matmul_wide", bindings: LINEAR_GEMM },
                EntryPoint { name: "matvec", bindings: LINEAR_GEMM },
                EntryPoint { name: "embedding", bindings: &[(0, Uniform), (2, ReadWrite), (3, Read), (4, Read), (5, Read)] },
            ],
            Kernel::MatvecSubgroup => &[EntryPoint { name: "matvec_subgroup", bindings: LINEAR_GEMM }],
            Kernel::MatmulK32 => &[EntryPoint { name: "matmul_k32", bindings: LINEAR_GEMM }],
            Kernel::MatmulF16 => &[EntryPoint { name: "matmul_f16", bindings: LINEAR_GEMM }],
            Kernel::MatvecDot4 => &[
                EntryPoint { name: "quantize_x", bindings: &[(0, Uniform), (1, Read), (6, ReadWrite), (7, ReadWrite)] },
                EntryPoint {
                    name: "matvec_dot4",
                    bindings: &[(0, Uniform), (2, ReadWrite), (3, Read), (4, Read), (6, ReadWrite), (7, ReadWrite)],
                },
            ],
            Kernel::Add => &[
                EntryPoint { name: "residual_add", bindings: IN_PLACE_WITH_INPUT },
                EntryPoint { name: "bias_add", bindings: IN_PLACE_WITH_INPUT },
                EntryPoint { name: "blend_columns", bindings: IN_PLACE_WITH_INPUT },
            ],
            Kernel::Activation => &[
                EntryPoint { name: "gelu", bindings: IN_PLACE },
                EntryPoint { name: "quick_gelu", bindings: IN_PLACE },
                EntryPoint { name: "gelu_tanh", bindings: IN_PLACE },
                EntryPoint { name: "silu_mul", bindings: &[(0, Uniform), (1, ReadWrite), (2, ReadWrite)] },
            ],
            Kernel::Norm => &[
                EntryPoint { name: "rms_norm", bindings: &[(0, Uniform), (1, Read), (2, Read), (4, ReadWrite)] },
                EntryPoint { name: "layer_norm", bindings: &[(0, Uniform), (1, Read), (2, Read), (3, Read), (4, ReadWrite)] },
            ],
            Kernel::Rope => &[
                EntryPoint { name: "rope", bindings: IN_PLACE },
                EntryPoint { name: "rope_rows", bindings: &[(0, Uniform), (1, ReadWrite), (2, Read)] },
            ],
            Kernel::Attention => &[
                EntryPoint { name: "main", bindings: ATTENTION },
                EntryPoint { name: "main_capture", bindings: ATTENTION_CAPTURE },
                EntryPoint {
                    name: "main_segments",
                    bindings: &[(0, Uniform), (1, Read), (2, Read), (3, Read), (4, ReadWrite), (10, Read), (11, Read), (12, Read)],
                },
            ],
            Kernel::FlashAttention => &[
                EntryPoint { name: "flash", bindings: ATTENTION },
                EntryPoint {
                    name: "flash_capture",
                    bindings: &[
                        (0, Uniform),
                        (1, Read),
                        (2, Read),
                        (3, Read),
                        (5, Read),
                        (6, Read),
                        (7, ReadWrite),
                        (8, ReadWrite),
                        (9, Read),
                    ],
                },
                EntryPoint { name: "decode_split", bindings: &[(0, Uniform), (1, Read), (2, Read), (3, Read), (9, Read), (10, ReadWrite)] },
                EntryPoint { name: "decode_combine", bindings: &[(0, Uniform), (4, ReadWrite), (10, ReadWrite)] },
            ],
            Kernel::PatchEmbed => &[EntryPoint { name: "im2col", bindings: &[(0, Uniform), (1, Read), (2, ReadWrite)] }],
            Kernel::Reduce => &[
                EntryPoint { name: "top_k", bindings: &[(0, Uniform), (1, Read), (3, ReadWrite), (4, ReadWrite)] },
                EntryPoint { name: "log_softmax_gather", bindings: &[(0, Uniform), (1, Read), (2, Read), (3, ReadWrite)] },
                EntryPoint { name: "token_rank", bindings: &[(0, Uniform), (1, Read), (2, Read), (4, ReadWrite)] },
            ],
            Kernel::Copy => &[EntryPoint { name: "copy", bindings: &[(0, Uniform), (1, Read), (2, ReadWrite)] }],
            Kernel::Explain => &[
                EntryPoint { name: "fixed_rms_norm", bindings: &[(0, Uniform), (1, Read), (2, Read), (3, Read), (4, ReadWrite)] },
                EntryPoint { name: "scatter_heads", bindings: &[(0, Uniform), (1, Read), (4, ReadWrite)] },
                EntryPoint { name: "weighted_values", bindings: &[(0, Uniform), (1, Read), (3, Read), (4, ReadWrite)] },
            ],
        }
    }

    /// Device features the shader needs: such a kernel is only used where the adapter has them
    /// (every other kernel runs on core WebGPU).
    pub fn required_features(self) -> wgpu::Features {
        match self {
            Kernel::MatvecSubgroup => wgpu::Features::SUBGROUP,
            Kernel::MatmulF16 => wgpu::Features::SHADER_F16,
            _ => wgpu::Features::empty(),
        }
    }

    /// Workgroup memory the shader's largest entry point uses. WebGPU guarantees 16 KiB; a kernel
    /// above it is only used where the device's `max_compute_workgroup_storage_size` allows.
    pub fn workgroup_storage_bytes(self) -> u32 {
        match self {
            Kernel::MatmulK32 => 32768,
            _ => 16384,
        }
    }

    pub fn entry_point(self, name: &str) -> &'static EntryPoint {
        self.entry_points().iter().find(|e| e.name == name).unwrap_or_else(|| panic!("{} has no entry point {name}", self.file()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WebGPU's default `maxComputeWorkgroupStorageSize`: every kernel but the declared ones fits.
    const WEBGPU_WORKGROUP_STORAGE: u32 = 16384;

    #[test]
    fn only_the_declared_kernels_need_more_workgroup_memory() {
        let above: Vec<Kernel> = Kernel::ALL.into_iter().filter(|k| k.workgroup_storage_bytes() > WEBGPU_WORKGROUP_STORAGE).collect();
        assert_eq!(above, [Kernel::MatmulK32]);
    }

    fn validate(kernel: Kernel) -> (naga::Module, naga::valid::ModuleInfo) {
        let module = naga::front::wgsl::parse_str(kernel.source())
            .unwrap_or_else(|e| panic!("{}: {}", kernel.file(), e.emit_to_string(kernel.source())));
        // Core WebGPU only unless the kernel declares a feature (the fast paths must not need
        // them). pack/unpack2x16float are core WGSL; naga files them under their own capability.
        let mut caps = naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32;
        if kernel.required_features().contains(wgpu::Features::SUBGROUP) {
            caps |= naga::valid::Capabilities::SUBGROUP;
        }
        if kernel.required_features().contains(wgpu::Features::SHADER_F16) {
            caps |= naga::valid::Capabilities::SHADER_FLOAT16;
        }
        let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}: {}", kernel.file(), e.emit_to_string(kernel.source())));
        (module, info)
    }

    #[test]
    fn every_shader_validates_at_webgpu_baseline() {
        for kernel in Kernel::ALL {
            validate(kernel);
        }
    }

    #[test]
    fn only_the_declared_kernels_need_device_features() {
        let core = naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32;
        for kernel in Kernel::ALL {
            let module = naga::front::wgsl::parse_str(kernel.source()).unwrap();
            let at_core = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), core).validate(&module);
            assert_eq!(at_core.is_err(), !kernel.required_features().is_empty(), "{}", kernel.file());
        }
    }

    #[test]
    fn every_shader_file_is_registered() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shaders");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|f| f.ends_with(".wgsl"))
            .collect();
        files.sort();
        let mut registered: Vec<String> = Kernel::ALL.iter().map(|k| k.file().to_string()).collect();
        registered.sort();
        assert_eq!(files, registered);
    }

    #[test]
    fn binding_tables_match_what_each_entry_point_uses() {
        for kernel in Kernel::ALL {
            let (module, info) = validate(kernel);
            let names: Vec<&str> = module.entry_points.iter().map(|e| e.name.as_str()).collect();
            let mut registered: Vec<&str> = kernel.entry_points().iter().map(|e| e.name).collect();
            let mut found = names.clone();
            found.sort();
            registered.sort();
            assert_eq!(found, registered, "{}: entry points", kernel.file());
            for (i, ep) in module.entry_points.iter().enumerate() {
                let fi = info.get_entry_point(i);
                let mut used = vec![];
                let mut workgroup_bytes = 0;
                let mut layouter = naga::proc::Layouter::default();
                layouter.update(module.to_ctx()).unwrap();
                for (h, g) in module.global_variables.iter() {
                    if fi[h].is_empty() {
                        continue;
                    }
                    match g.space {
                        naga::AddressSpace::WorkGroup => workgroup_bytes += layouter[g.ty].size,
                        naga::AddressSpace::Uniform => used.push((g.binding.as_ref().unwrap().binding, Uniform)),
                        naga::AddressSpace::Storage { access } => {
                            let a = if access.contains(naga::StorageAccess::STORE) { ReadWrite } else { Read };
                            used.push((g.binding.as_ref().unwrap().binding, a));
                        }
                        _ => {}
                    }
                    if let Some(b) = &g.binding {
                        assert_eq!(b.group, 0, "{}:{} uses bind group {}", kernel.file(), ep.name, b.group);
                    }
                }
                used.sort_by_key(|u| u.0);
                let table = kernel.entry_point(&ep.name);
                assert_eq!(used, table.bindings.to_vec(), "{}:{}: bindings used vs registered", kernel.file(), ep.name);
                assert!(
                    workgroup_bytes <= kernel.workgroup_storage_bytes(),
                    "{}:{} uses {workgroup_bytes} bytes of workgroup memory",
                    kernel.file(),
                    ep.name
                );
            }
        }
    }

    #[test]
    fn every_shader_opens_with_its_binding_table() {
        for kernel in Kernel::ALL {
            let head: String = kernel.source().lines().take_while(|l| l.starts_with("//")).collect::<Vec<_>>().join("\n");
            assert!(head.starts_with(&format!("// {}", kernel.file())), "{} must open by naming itself", kernel.file());
            assert!(head.contains("Bindings (group 0)"), "{} must document its bindings", kernel.file());
            for e in kernel.entry_points() {
                for (b, _) in e.bindings {
                    assert!(head.contains(&format!("\n//   {b}  ")), "{}: binding {b} is not documented", kernel.file());
                }
            }
        }
    }
}
