//! A weight matrix on the host, already in the dtype and packing the GPU will read.

use half::f16;

use crate::{DType, QuantFormat, QuantPlanes, TensorError};

/// Alignment of every plane inside a GPU buffer: WebGPU's `minStorageBufferOffsetAlignment` is at
/// most 256 bytes, so a plane at a multiple of 256 can be bound on its own.
pub const PLANE_ALIGN: usize = 256;

#[derive(Debug, Clone, PartialEq)]
pub enum MatrixData {
    F32(Vec<f32>),
    F16(Vec<f16>),
    Q8G32(QuantPlanes),
    Q4G32(QuantPlanes),
}

/// `rows x cols`, row-major, as in HF `nn.Linear.weight` (`[out_features, in_features]`): a row is
/// one output feature and K = `cols` runs along it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostMatrix {
    pub rows: usize,
    pub cols: usize,
    pub data: MatrixData,
}

impl HostMatrix {
    /// Convert f32 values to `dtype` (quantising when asked). Bf16 is load-only.
    pub fn from_f32(rows: usize, cols: usize, values: &[f32], dtype: DType) -> Result<Self, TensorError> {
        if values.len() != rows * cols {
            return Err(TensorError::Length { what: "matrix", shape: vec![rows, cols], expected: rows * cols, found: values.len() });
        }
        let data = match dtype {
            DType::F32 => MatrixData::F32(values.to_vec()),
            DType::F16 => MatrixData::F16(values.iter().map(|&v| f16::from_f32(v)).collect()),
            DType::Bf16 => return Err(TensorError::LoadOnly("bf16")),
            DType::Q8G32 => MatrixData::Q8G32(QuantPlanes::quantize(QuantFormat::Q8G32, values, rows, cols)?),
            DType::Q4G32 => MatrixData::Q4G32(QuantPlanes::quantize(QuantFormat::Q4G32, values, rows, cols)?),
        };
        Ok(HostMatrix { rows, cols, data })
    }

    pub fn dtype(&self) -> DType {
        match self.data {
            MatrixData::F32(_) => DType::F32,
            MatrixData::F16(_) => DType::F16,
            MatrixData::Q8G32(_) => DType::Q8G32,
            MatrixData::Q4G32(_) => DType::Q4G32,
        }
    }

    /// Element `(r, c)` exactly as the GPU decodes it.
    pub fn get(&self, r: usize, c: usize) -> f32 {
        let e = r * self.cols + c;
        match &self.data {
            MatrixData::F32(v) => v[e],
            MatrixData::F16(v) => v[e].to_f32(),
            MatrixData::Q8G32(p) | MatrixData::Q4G32(p) => p.get(e),
        }
    }

    /// Row `r` decoded to f32.
    pub fn row(&self, r: usize) -> Vec<f32> {
        (0..self.cols).map(|c| self.get(r, c)).collect()
    }

    /// The whole matrix decoded to f32 (what the kernels compute with).
    pub fn to_f32(&self) -> Vec<f32> {
        (0..self.rows).flat_map(|r| self.row(r)).collect()
    }

    /// Rows `[start, end)` as a matrix of their own (used to split matrices that exceed a binding).
    pub fn rows_range(&self, start: usize, end: usize) -> Result<HostMatrix, TensorError> {
        if start > end || end > self.rows {
            return Err(TensorError::RowRange { start, end, rows: self.rows });
        }
        let (s, e) = (start * self.cols, end * self.cols);
        let data = match &self.data {
            MatrixData::F32(v) => MatrixData::F32(v[s..e].to_vec()),
            MatrixData::F16(v) => MatrixData::F16(v[s..e].to_vec()),
            MatrixData::Q8G32(p) => MatrixData::Q8G32(p.slice(s, e)),
            MatrixData::Q4G32(p) => MatrixData::Q4G32(p.slice(s, e)),
        };
        Ok(HostMatrix { rows: end - start, cols: self.cols, data })
    }

    /// Bytes per row on the GPU, both planes counted (used to size row blocks).
    pub fn row_bytes(&self) -> usize {
        self.dtype().row_bytes(self.cols)
    }

    /// The GPU image of the matrix: the values plane at offset 0, then (quantised formats only) the
    /// scales plane at the returned offset, a multiple of [`PLANE_ALIGN`]. Length is a multiple of 4.
    pub fn gpu_bytes(&self) -> (Vec<u8>, Option<usize>) {
        let (mut bytes, scales): (Vec<u8>, Option<&[f16]>) = match &self.data {
            MatrixData::F32(v) => (bytemuck::cast_slice(v).to_vec(), None),
            MatrixData::F16(v) => (bytemuck::cast_slice(v).to_vec(), None),
            MatrixData::Q8G32(p) | MatrixData::Q4G32(p) => (p.values.clone(), Some(&p.scales)),
        };
        let offset = scales.map(|s| {
            let off = bytes.len().next_multiple_of(PLANE_ALIGN);
            bytes.resize(off, 0);
            bytes.extend_from_slice(bytemuck::cast_slice(s));
            off
        });
        bytes.resize(bytes.len().next_multiple_of(4).max(4), 0);
        (bytes, offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rng;

    #[test]
    fn gpu_bytes_put_scales_on_an_aligned_plane() {
        let x = Rng::new(5).normal(3 * 64, 1.0);
        let m = HostMatrix::from_f32(3, 64, &x, DType::Q4G32).unwrap();
        let (bytes, off) = m.gpu_bytes();
        let off = off.unwrap();
        assert_eq!(off, 256);
        assert_eq!(bytes.len(), 256 + 6 * 2);
        let s0 = f16::from_le_bytes([bytes[off], bytes[off + 1]]);
        let MatrixData::Q4G32(p) = &m.data else { unreachable!() };
        assert_eq!(s0, p.scales[0]);
        let f = HostMatrix::from_f32(3, 5, &x[..15], DType::F16).unwrap();
        assert_eq!(
            f.gpu_bytes(),
            (
                {
                    let mut b = bytemuck::cast_slice::<f16, u8>(&x[..15].iter().map(|&v| f16::from_f32(v)).collect::<Vec<_>>()).to_vec();
                    b.resize(32, 0);
                    b
                },
                None
            )
        );
    }

    #[test]
    fn rows_range_decodes_like_the_whole() {
        let x = Rng::new(9).normal(5 * 32, 1.0);
        for dt in [DType::F32, DType::F16, DType::Q8G32, DType::Q4G32] {
            let m = HostMatrix::from_f32(5, 32, &x, dt).unwrap();
            let part = m.rows_range(2, 5).unwrap();
            assert_eq!(part.to_f32(), m.to_f32()[64..].to_vec(), "{dt}");
        }
        let m = HostMatrix::from_f32(5, 32, &x, DType::F32).unwrap();
        assert!(matches!(m.rows_range(3, 6), Err(TensorError::RowRange { .. })));
        assert!(matches!(HostMatrix::from_f32(5, 32, &x, DType::Bf16), Err(TensorError::LoadOnly(_))));
    }
}
