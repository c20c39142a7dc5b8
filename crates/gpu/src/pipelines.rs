//! Compiled pipelines, keyed by kernel, entry point and override constants, each with the explicit
//! bind-group layout of its entry point's binding table.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::kernels::{Access, Kernel};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PipelineKey {
    pub kernel: Kernel,
    pub entry: &'static str,
    pub overrides: Vec<(&'static str, u32)>,
}

#[derive(Debug)]
pub(crate) struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

#[derive(Debug, Default)]
pub(crate) struct PipelineCache {
    modules: Mutex<HashMap<Kernel, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<Pipeline>>>,
}

impl PipelineCache {
    pub fn get(&self, device: &wgpu::Device, key: &PipelineKey) -> Arc<Pipeline> {
        if let Some(p) = self.pipelines.lock().unwrap().get(key) {
            return p.clone();
        }
        let module = self
            .modules
            .lock()
            .unwrap()
            .entry(key.kernel)
            .or_insert_with(|| {
                device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(key.kernel.file()),
                    source: wgpu::ShaderSource::Wgsl(key.kernel.source().into()),
                })
            })
            .clone();
        let entry = key.kernel.entry_point(key.entry);
        let layout_entries: Vec<wgpu::BindGroupLayoutEntry> = entry
            .bindings
            .iter()
            .map(|&(binding, access)| wgpu::BindGroupLayoutEntry {
                binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match access {
                        Access::Uniform => wgpu::BufferBindingType::Uniform,
                        Access::Read => wgpu::BufferBindingType::Storage { read_only: true },
                        Access::ReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
                    },
                    // Uniform data lives in shared chunks, bound at each dispatch's slot.
                    has_dynamic_offset: access == Access::Uniform,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let label = format!("{}:{}", key.kernel.file(), key.entry);
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(&label), entries: &layout_entries });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(&label),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let constants: Vec<(&str, f64)> = key.overrides.iter().map(|&(n, v)| (n, v as f64)).collect();
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(key.entry),
            compilation_options: wgpu::PipelineCompilationOptions { constants: &constants, zero_initialize_workgroup_memory: false },
            cache: None,
        });
        let p = Arc::new(Pipeline { pipeline, layout });
        self.pipelines.lock().unwrap().insert(key.clone(), p.clone());
        p
    }
}
