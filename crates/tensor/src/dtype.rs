use std::fmt;
use std::str::FromStr;

use crate::TensorError;

/// Element types the runtime knows. `Bf16` is accepted from checkpoints and converted on load; the
/// GPU never sees it (WebGPU has no bf16, and unpacking it costs the same as f32 bandwidth-wise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    Bf16,
    /// 8-bit values in groups of 32 along K with one f16 scale per group: `d * q`.
    Q8G32,
    /// 4-bit values in groups of 32 along K with one f16 scale per group: `d * (q - 8)` (q4_0).
    Q4G32,
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::Bf16 => "bf16",
            DType::Q8G32 => "q8",
            DType::Q4G32 => "q4",
        }
    }

    pub fn is_quantized(self) -> bool {
        matches!(self, DType::Q8G32 | DType::Q4G32)
    }

    /// Bytes one row of `cols` elements occupies on the GPU (values and scales together).
    pub fn row_bytes(self, cols: usize) -> usize {
        match self {
            DType::F32 => cols * 4,
            DType::F16 | DType::Bf16 => cols * 2,
            DType::Q8G32 => cols + cols / 16,
            DType::Q4G32 => cols / 2 + cols / 16,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DType {
    type Err = TensorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(DType::F32),
            "f16" | "float16" => Ok(DType::F16),
            "bf16" | "bfloat16" => Ok(DType::Bf16),
            "q8" | "q8g32" => Ok(DType::Q8G32),
            "q4" | "q4g32" => Ok(DType::Q4G32),
            _ => Err(TensorError::UnknownDType(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_every_name() {
        for d in [DType::F32, DType::F16, DType::Bf16, DType::Q8G32, DType::Q4G32] {
            assert_eq!(d.name().parse::<DType>().unwrap(), d);
        }
        assert!(matches!("q5".parse::<DType>(), Err(TensorError::UnknownDType(_))));
    }
}
