//! Q8G32 and Q4G32: groups of 32 consecutive elements along K, one f16 scale per group.
//! The rounding rules are ggml's q8_0 / q4_0 so numbers can be compared with llama.cpp.
//!
//! Packed layout (what the shaders read, `shaders/linear.wgsl` documents the same):
//! - element `e = row * K + k` of the matrix, K a multiple of 32;
//! - Q8G32 values: byte `e` of the values plane is the signed 8-bit `q` (little-endian u32 words);
//! - Q4G32 values: word `e / 8` holds elements `8*(e/8) .. 8*(e/8)+8`, element `e` in bits
//!   `4*(e%8) .. 4*(e%8)+4` as unsigned `q` in 0..16;
//! - scales: f16 number `e / 32` of the scales plane.

use half::f16;

use crate::TensorError;

pub const GROUP_SIZE: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantFormat {
    Q8G32,
    Q4G32,
}

impl QuantFormat {
    pub fn name(self) -> &'static str {
        match self {
            QuantFormat::Q8G32 => "Q8G32",
            QuantFormat::Q4G32 => "Q4G32",
        }
    }

    /// Bytes of the values plane for `n` elements.
    pub fn values_bytes(self, n: usize) -> usize {
        match self {
            QuantFormat::Q8G32 => n,
            QuantFormat::Q4G32 => n / 2,
        }
    }
}

/// A quantised matrix in its two planes. `values` holds the packed q's, `scales` one f16 per group.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantPlanes {
    pub format: QuantFormat,
    pub values: Vec<u8>,
    pub scales: Vec<f16>,
}

impl QuantPlanes {
    /// Quantise `data` (`rows x cols`, row-major) group by group.
    pub fn quantize(format: QuantFormat, data: &[f32], rows: usize, cols: usize) -> Result<Self, TensorError> {
        check_shape(format, data.len(), rows, cols)?;
        let n = rows * cols;
        let mut values = vec![0u8; format.values_bytes(n)];
        let mut scales = Vec::with_capacity(n / GROUP_SIZE);
        for (g, group) in data.chunks_exact(GROUP_SIZE).enumerate() {
            let base = g * GROUP_SIZE;
            match format {
                QuantFormat::Q8G32 => {
                    let (d, qs) = quantize_q8_group(group);
                    scales.push(f16::from_f32(d));
                    for (i, q) in qs.iter().enumerate() {
                        values[base + i] = *q as u8;
                    }
                }
                QuantFormat::Q4G32 => {
                    let (d, qs) = quantize_q4_group(group);
                    scales.push(f16::from_f32(d));
                    for (i, q) in qs.iter().enumerate() {
                        let e = base + i;
                        values[e / 2] |= q << (4 * (e % 2));
                    }
                }
            }
        }
        Ok(QuantPlanes { format, values, scales })
    }

    /// Number of elements the planes hold.
    pub fn len(&self) -> usize {
        self.scales.len() * GROUP_SIZE
    }

    pub fn is_empty(&self) -> bool {
        self.scales.is_empty()
    }

    /// The value of element `e` as the GPU computes it: `f32(scale) * q` (q8) or
    /// `f32(scale) * (q - 8)` (q4).
    pub fn get(&self, e: usize) -> f32 {
        let d = self.scales[e / GROUP_SIZE].to_f32();
        match self.format {
            QuantFormat::Q8G32 => d * (self.values[e] as i8) as f32,
            QuantFormat::Q4G32 => {
                let q = (self.values[e / 2] >> (4 * (e % 2))) & 0xF;
                d * (q as i32 - 8) as f32
            }
        }
    }

    pub fn dequantize(&self) -> Vec<f32> {
        (0..self.len()).map(|e| self.get(e)).collect()
    }

    /// Planes for the elements `[start, end)` (both multiples of the group size).
    pub fn slice(&self, start: usize, end: usize) -> QuantPlanes {
        debug_assert!(start.is_multiple_of(GROUP_SIZE) && end.is_multiple_of(GROUP_SIZE));
        let (vs, ve) = (self.format.values_bytes(start), self.format.values_bytes(end));
        QuantPlanes {
            format: self.format,
            values: self.values[vs..ve].to_vec(),
            scales: self.scales[start / GROUP_SIZE..end / GROUP_SIZE].to_vec(),
        }
    }
}

fn check_shape(format: QuantFormat, len: usize, rows: usize, cols: usize) -> Result<(), TensorError> {
    if len != rows * cols {
        return Err(TensorError::Length { what: format.name(), shape: vec![rows, cols], expected: rows * cols, found: len });
    }
    if !cols.is_multiple_of(GROUP_SIZE) {
        return Err(TensorError::GroupAlignment { format: format.name(), cols, group: GROUP_SIZE });
    }
    Ok(())
}

/// ggml `quantize_row_q8_0_ref`: d = amax / 127, q = round(x / d).
fn quantize_q8_group(x: &[f32]) -> (f32, [i8; GROUP_SIZE]) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut q = [0i8; GROUP_SIZE];
    for (qi, &v) in q.iter_mut().zip(x) {
        *qi = (v * id).round().clamp(-127.0, 127.0) as i8;
    }
    (d, q)
}

/// ggml `quantize_row_q4_0_ref`: the signed value of largest magnitude maps to -8,
/// d = max / -8, q = min(15, trunc(x / d + 8.5)).
fn quantize_q4_group(x: &[f32]) -> (f32, [u8; GROUP_SIZE]) {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut q = [0u8; GROUP_SIZE];
    for (qi, &v) in q.iter_mut().zip(x) {
        *qi = ((v * id + 8.5) as i32).clamp(0, 15) as u8;
    }
    (d, q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rng;

    fn nmse(a: &[f32], b: &[f32]) -> f64 {
        let num: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
        let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
        num / den
    }

    /// Per element, a round-trip is within half a step of its group (plus the f16 rounding of the
    /// scale, which moves each value by at most |q| * ulp(d)/2). q4_0 is asymmetric: q - 8 spans
    /// -8..=7, so a value beyond 7.5 steps on the side opposite the extreme clamps to 7 steps.
    fn check_round_trip(format: QuantFormat, step_max: f32, q_max: f32) {
        let (rows, cols) = (7, 96);
        let x = Rng::new(11).normal(rows * cols, 1.5);
        let planes = QuantPlanes::quantize(format, &x, rows, cols).unwrap();
        let y = planes.dequantize();
        for (g, (xg, yg)) in x.chunks(GROUP_SIZE).zip(y.chunks(GROUP_SIZE)).enumerate() {
            let amax = xg.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let step = amax / step_max;
            let d16 = planes.scales[g].to_f32();
            let scale_err = (d16.abs() - step).abs() * q_max;
            for (a, b) in xg.iter().zip(yg) {
                let bound = if a.abs() > (step_max - 0.5) * step { step } else { 0.5 * step };
                assert!((a - b).abs() <= bound + scale_err + 1e-6, "group {g}: {a} -> {b}, step {step}");
            }
        }
        let e = nmse(&y, &x);
        assert!(e < if format == QuantFormat::Q8G32 { 1e-4 } else { 1.5e-2 }, "{} nmse {e}", format.name());
    }

    #[test]
    fn q8_round_trip_is_within_half_a_step() {
        check_round_trip(QuantFormat::Q8G32, 127.0, 127.0);
    }

    #[test]
    fn q4_round_trip_is_within_half_a_step() {
        check_round_trip(QuantFormat::Q4G32, 8.0, 8.0);
    }

    #[test]
    fn q4_maps_the_signed_extreme_to_minus_eight_and_zero_group_to_zero() {
        let mut x = vec![0.25f32; 32];
        x[5] = -2.0;
        let p = QuantPlanes::quantize(QuantFormat::Q4G32, &x, 1, 32).unwrap();
        assert_eq!(p.get(5), -2.0);
        assert_eq!((p.values[2] >> 4) & 0xF, 0, "element 5 sits in the high nibble of byte 2");
        let z = QuantPlanes::quantize(QuantFormat::Q4G32, &[0.0; 32], 1, 32).unwrap();
        assert!(z.dequantize().iter().all(|&v| v == 0.0));
        let z8 = QuantPlanes::quantize(QuantFormat::Q8G32, &[0.0; 32], 1, 32).unwrap();
        assert!(z8.dequantize().iter().all(|&v| v == 0.0));
    }

    #[test]
    fn rejects_k_not_multiple_of_group_and_wrong_length() {
        assert!(matches!(QuantPlanes::quantize(QuantFormat::Q8G32, &[0.0; 40], 1, 40), Err(TensorError::GroupAlignment { cols: 40, .. })));
        assert!(matches!(QuantPlanes::quantize(QuantFormat::Q4G32, &[0.0; 32], 2, 32), Err(TensorError::Length { .. })));
    }

    #[test]
    fn slice_matches_full_planes() {
        let x = Rng::new(3).normal(4 * 64, 1.0);
        for f in [QuantFormat::Q8G32, QuantFormat::Q4G32] {
            let p = QuantPlanes::quantize(f, &x, 4, 64).unwrap();
            let s = p.slice(64, 192);
            assert_eq!(s.dequantize(), p.dequantize()[64..192].to_vec());
        }
    }
}
