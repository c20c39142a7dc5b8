//! Uniform structs, one per shader family, field for field the WGSL structs of the same name.
//! `tests` in this crate compare size and every member offset with naga's layout of the WGSL.

use bytemuck::{Pod, Zeroable};

/// A `#[repr(C)]` uniform struct with its WGSL twin's name and its fields' offsets.
pub trait UniformParams: Pod {
    const WGSL_NAME: &'static str;
    fn field_offsets() -> Vec<(&'static str, usize)>;
}

macro_rules! uniform_params {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, Default, PartialEq, Pod, Zeroable)]
        pub struct $name { $($(#[$fmeta])* pub $field: $ty),* }

        impl UniformParams for $name {
            const WGSL_NAME: &'static str = stringify!($name);
            fn field_offsets() -> Vec<(&'static str, usize)> {
                vec![$((stringify!($field), std::mem::offset_of!($name, $field))),*]
            }
        }
    };
}

uniform_params!(
    /// `shaders/linear.wgsl`.
    LinearParams { m: u32, k: u32, row_start: u32, row_count: u32, y_stride: u32, _pad0: u32, _pad1: u32, _pad2: u32 }
);

uniform_params!(
    /// `shaders/add.wgsl`.
    AddParams { n: u32, cols: u32, _pad0: u32, _pad1: u32 }
);

uniform_params!(
    /// `shaders/activation.wgsl`.
    ActivationParams { n: u32, cols: u32, _pad0: u32, _pad1: u32 }
);

uniform_params!(
    /// `shaders/norm.wgsl`.
    NormParams { rows: u32, cols: u32, eps: f32, _pad0: u32 }
);

uniform_params!(
    /// `shaders/rope.wgsl`.
    RopeParams { n_rows: u32, n_heads: u32, head_dim: u32, row_stride: u32, col_offset: u32, pos_offset: u32, theta: f32, _pad0: u32 }
);

uniform_params!(
    /// `shaders/attention.wgsl`.
    AttentionParams {
        n_queries: u32,
        n_keys: u32,
        n_heads: u32,
        n_kv_heads: u32,
        head_dim: u32,
        q_stride: u32,
        q_offset: u32,
        k_stride: u32,
        k_offset: u32,
        v_stride: u32,
        v_offset: u32,
        causal: u32,
        scale: f32,
        n_head_slots: u32,
        mask_from: u32,
        n_row_slots: u32,
    }
);

uniform_params!(
    /// `shaders/patch_embed.wgsl`.
    PatchParams { channels: u32, height: u32, width: u32, patch_size: u32, grid_w: u32, n_patches: u32, _pad0: u32, _pad1: u32 }
);

uniform_params!(
    /// `shaders/reduce.wgsl`.
    ReduceParams { rows: u32, n: u32, k: u32, _pad0: u32 }
);

uniform_params!(
    /// `shaders/copy.wgsl`.
    CopyParams { n: u32, _pad0: u32, _pad1: u32, _pad2: u32 }
);

uniform_params!(
    /// `shaders/explain.wgsl`.
    ExplainParams { rows: u32, cols: u32, head: u32, head_dim: u32, kv_head: u32, v_stride: u32, eps: f32, _pad0: u32 }
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Kernel;

    fn check<P: UniformParams>(kernel: Kernel) {
        assert_eq!(kernel.params_struct(), P::WGSL_NAME);
        let module = naga::front::wgsl::parse_str(kernel.source()).unwrap_or_else(|e| panic!("{}: {e}", kernel.file()));
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        let (handle, ty) = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some(P::WGSL_NAME))
            .unwrap_or_else(|| panic!("{} declares no struct {}", kernel.file(), P::WGSL_NAME));
        let naga::TypeInner::Struct { members, span } = &ty.inner else { panic!("{} is not a struct", P::WGSL_NAME) };
        assert_eq!(*span as usize, size_of::<P>(), "{}: WGSL size vs Rust size", P::WGSL_NAME);
        assert_eq!(layouter[handle].size as usize, size_of::<P>());
        let rust = P::field_offsets();
        let wgsl: Vec<(String, usize)> = members.iter().map(|m| (m.name.clone().unwrap_or_default(), m.offset as usize)).collect();
        assert_eq!(rust.len(), wgsl.len(), "{}: member count", P::WGSL_NAME);
        for ((rn, ro), (wn, wo)) in rust.iter().zip(&wgsl) {
            assert_eq!((*rn, *ro), (wn.as_str(), *wo), "{}: member name/offset", P::WGSL_NAME);
        }
        assert_eq!(size_of::<P>() % 16, 0, "{}: uniform structs are padded to 16 bytes", P::WGSL_NAME);
    }

    #[test]
    fn every_uniform_struct_matches_its_wgsl_layout() {
        check::<LinearParams>(Kernel::Linear);
        check::<AddParams>(Kernel::Add);
        check::<ActivationParams>(Kernel::Activation);
        check::<NormParams>(Kernel::Norm);
        check::<RopeParams>(Kernel::Rope);
        check::<AttentionParams>(Kernel::Attention);
        check::<AttentionParams>(Kernel::FlashAttention);
        check::<PatchParams>(Kernel::PatchEmbed);
        check::<ReduceParams>(Kernel::Reduce);
        check::<CopyParams>(Kernel::Copy);
        check::<ExplainParams>(Kernel::Explain);
    }
}
