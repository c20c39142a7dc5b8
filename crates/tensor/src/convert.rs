//! Decoding checkpoint bytes (little-endian, as safetensors stores them) to f32. bf16 is accepted
//! here and nowhere else: it is converted on load, never uploaded.

use half::{bf16, f16};

use crate::{DType, TensorError};

/// `bytes` holding `dtype` elements (f32, f16 or bf16), little-endian, as f32.
pub fn decode_to_f32(bytes: &[u8], dtype: DType) -> Result<Vec<f32>, TensorError> {
    let width = match dtype {
        DType::F32 => 4,
        DType::F16 | DType::Bf16 => 2,
        DType::Q8G32 | DType::Q4G32 => {
            return Err(TensorError::Shape(format!("{dtype} is a packed GPU format, not a checkpoint dtype")));
        }
    };
    if !bytes.len().is_multiple_of(width) {
        return Err(TensorError::Shape(format!("{} bytes are not a whole number of {dtype} elements ({width} bytes each)", bytes.len())));
    }
    let words = bytes.chunks_exact(width);
    Ok(match dtype {
        DType::F32 => words.map(|w| f32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect(),
        DType::F16 => words.map(|w| f16::from_le_bytes([w[0], w[1]]).to_f32()).collect(),
        _ => words.map(|w| bf16::from_le_bytes([w[0], w[1]]).to_f32()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_checkpoint_dtype_exactly() {
        let values = [1.5f32, -0.25, 65504.0, 0.0];
        let f32_bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(decode_to_f32(&f32_bytes, DType::F32).unwrap(), values);
        let f16_bytes: Vec<u8> = values.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes()).collect();
        assert_eq!(decode_to_f32(&f16_bytes, DType::F16).unwrap(), values);
        // bf16 keeps f32's exponent: 3e38 survives, 1 + 2^-8 rounds to 1.
        let bf = [3.0e38f32, 1.0 + 1.0 / 256.0, -2.0];
        let bf_bytes: Vec<u8> = bf.iter().flat_map(|v| bf16::from_f32(*v).to_le_bytes()).collect();
        let got = decode_to_f32(&bf_bytes, DType::Bf16).unwrap();
        assert!((got[0] - 3.0e38).abs() / 3.0e38 < 1e-2);
        assert_eq!(&got[1..], &[1.0, -2.0]);
    }

    #[test]
    fn rejects_ragged_bytes_and_packed_formats() {
        assert!(decode_to_f32(&[0; 3], DType::F16).unwrap_err().to_string().contains("3 bytes"));
        assert!(decode_to_f32(&[0; 4], DType::Q4G32).is_err());
    }
}
