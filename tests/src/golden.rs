//! The committed HF golden fixtures (tests/data/golden/tiny-llava.safetensors, written by
//! scripts/golden/make_fixtures.py; tests/data/golden/preprocess.safetensors, written by
//! scripts/golden/make_preprocess_fixtures.py) and paths into tests/data.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use safetensors::SafeTensors;
use safetensors::tensor::Dtype;

/// `tests/data/<p>`.
pub fn data(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data").join(p)
}

#[derive(Debug)]
pub struct Golden {
    pub f32s: HashMap<String, (Vec<usize>, Vec<f32>)>,
    pub i64s: HashMap<String, Vec<i64>>,
    pub u8s: HashMap<String, (Vec<usize>, Vec<u8>)>,
    pub meta: HashMap<String, String>,
}

impl Golden {
    pub fn f32(&self, name: &str) -> &[f32] {
        &self.f32s.get(name).unwrap_or_else(|| panic!("fixture has no f32 tensor {name}")).1
    }

    pub fn u8(&self, name: &str) -> &[u8] {
        &self.u8s.get(name).unwrap_or_else(|| panic!("fixture has no u8 tensor {name}")).1
    }

    pub fn shape(&self, name: &str) -> &[usize] {
        &self.f32s[name].0
    }

    pub fn ids(&self, name: &str) -> Vec<u32> {
        self.i64s.get(name).unwrap_or_else(|| panic!("fixture has no int tensor {name}")).iter().map(|&v| v as u32).collect()
    }
}

/// The forward-pass fixture of tests/data/tiny-llava.
pub fn golden() -> &'static Golden {
    static G: OnceLock<Golden> = OnceLock::new();
    G.get_or_init(|| Golden::open("golden/tiny-llava.safetensors"))
}

/// The image processors' fixture.
pub fn preprocess_golden() -> &'static Golden {
    static G: OnceLock<Golden> = OnceLock::new();
    G.get_or_init(|| Golden::open("golden/preprocess.safetensors"))
}

impl Golden {
    /// Reads `tests/data/<file>`.
    pub fn open(file: &str) -> Golden {
        let bytes = std::fs::read(data(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let meta = meta.metadata().clone().unwrap_or_default();
        let mut g = Golden { f32s: HashMap::new(), i64s: HashMap::new(), u8s: HashMap::new(), meta };
        for (name, t) in st.tensors() {
            match t.dtype() {
                Dtype::F32 => {
                    g.f32s.insert(name, (t.shape().to_vec(), bytemuck::pod_collect_to_vec(t.data())));
                }
                Dtype::I64 => {
                    g.i64s.insert(name, bytemuck::pod_collect_to_vec(t.data()));
                }
                Dtype::U8 => {
                    g.u8s.insert(name, (t.shape().to_vec(), t.data().to_vec()));
                }
                d => panic!("unexpected dtype {d:?} in the fixture"),
            }
        }
        g
    }
}
