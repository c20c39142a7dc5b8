//! Device tensors: f32/u32 activations as views into buffers, and weight matrices split into
//! row blocks that each fit one storage binding.

use std::sync::Arc;

use llava_lens_tensor::{DType, HostMatrix};

use crate::memory::TrackedBuffer;

use crate::{GpuContext, GpuError};

const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

/// A view of `len` 4-byte elements (f32 or u32) at `offset` bytes into a buffer, with a shape.
/// Allocations are padded to 16 bytes so a view can also be read as `array<vec4<f32>>`.
#[derive(Debug, Clone)]
pub struct GpuTensor {
    buffer: Arc<TrackedBuffer>,
    offset: u64,
    len: usize,
    shape: Vec<usize>,
}

fn padded(bytes: u64) -> u64 {
    bytes.next_multiple_of(16).max(16)
}

impl GpuTensor {
    /// An uninitialised-by-us (zeroed by wgpu) tensor.
    pub fn zeros(ctx: &GpuContext, shape: &[usize], label: &str) -> GpuTensor {
        let len: usize = shape.iter().product();
        let buffer = TrackedBuffer::new(
            &ctx.device,
            &ctx.memory,
            &wgpu::BufferDescriptor { label: Some(label), size: padded(len as u64 * 4), usage: USAGE, mapped_at_creation: false },
        );
        GpuTensor { buffer, offset: 0, len, shape: shape.to_vec() }
    }

    /// A tensor its kernel writes in full (an op's output): its buffer may be a freed one of the
    /// same size, holding old values, so nothing may read it before it is written.
    pub fn output(ctx: &GpuContext, shape: &[usize], label: &str) -> GpuTensor {
        let len: usize = shape.iter().product();
        let buffer = TrackedBuffer::pooled(
            &ctx.device,
            &ctx.memory,
            &wgpu::BufferDescriptor { label: Some(label), size: padded(len as u64 * 4), usage: USAGE, mapped_at_creation: false },
        );
        GpuTensor { buffer, offset: 0, len, shape: shape.to_vec() }
    }

    fn from_bytes(ctx: &GpuContext, bytes: &[u8], shape: &[usize], label: &str) -> GpuTensor {
        let mut data = bytes.to_vec();
        data.resize(padded(bytes.len() as u64) as usize, 0);
        let buffer = TrackedBuffer::with_data(
            &ctx.device,
            &ctx.memory,
            &wgpu::util::BufferInitDescriptor { label: Some(label), contents: &data, usage: USAGE },
        );
        GpuTensor { buffer, offset: 0, len: bytes.len() / 4, shape: shape.to_vec() }
    }

    pub fn from_f32(ctx: &GpuContext, data: &[f32], shape: &[usize], label: &str) -> Result<GpuTensor, GpuError> {
        check_len(data.len(), shape, label)?;
        Ok(Self::from_bytes(ctx, bytemuck::cast_slice(data), shape, label))
    }

    pub fn from_u32(ctx: &GpuContext, data: &[u32], shape: &[usize], label: &str) -> Result<GpuTensor, GpuError> {
        check_len(data.len(), shape, label)?;
        Ok(Self::from_bytes(ctx, bytemuck::cast_slice(data), shape, label))
    }

    /// A view of `shape` starting `elem_offset` elements in. The byte offset must meet the device's
    /// storage offset alignment (256 bytes on most adapters).
    /// Overwrites the tensor with `data` (u32, the whole tensor) through the queue: the write
    /// lands before any work submitted after it, and creates no buffer (a decode step's token id).
    pub fn write_u32(&self, ctx: &GpuContext, data: &[u32]) -> Result<(), GpuError> {
        if data.len() != self.len {
            return Err(GpuError::shape("write_u32", format!("{} values into a tensor of {}", data.len(), self.len)));
        }
        ctx.queue.write_buffer(&self.buffer, self.offset, bytemuck::cast_slice(data));
        Ok(())
    }

    pub fn view(&self, ctx: &GpuContext, elem_offset: usize, shape: &[usize]) -> Result<GpuTensor, GpuError> {
        let len: usize = shape.iter().product();
        let offset = self.offset + elem_offset as u64 * 4;
        let align = ctx.limits().min_storage_buffer_offset_alignment as u64;
        if !offset.is_multiple_of(align) || elem_offset + len > self.len {
            return Err(GpuError::shape(
                "view",
                format!("elements {elem_offset}..{} of {} (byte offset {offset}, alignment {align})", elem_offset + len, self.len),
            ));
        }
        Ok(GpuTensor { buffer: self.buffer.clone(), offset, len, shape: shape.to_vec() })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    pub fn offset_bytes(&self) -> u64 {
        self.offset
    }

    pub fn size_bytes(&self) -> u64 {
        self.len as u64 * 4
    }

    /// Binding of exactly the view's elements.
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: wgpu::BufferSize::new(self.size_bytes().max(4)),
        })
    }

    /// Binding rounded up to 16 bytes, for shaders that read the view as `array<vec4<f32>>`.
    pub fn binding_vec4(&self) -> wgpu::BindingResource<'_> {
        let size = padded(self.size_bytes()).min(self.buffer.size() - self.offset);
        wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer: &self.buffer, offset: self.offset, size: wgpu::BufferSize::new(size) })
    }
}

fn check_len(len: usize, shape: &[usize], label: &str) -> Result<(), GpuError> {
    let want: usize = shape.iter().product();
    if len != want {
        return Err(GpuError::shape("tensor", format!("{label}: {len} elements do not make shape {shape:?}")));
    }
    Ok(())
}

/// Rows `[row_start, row_start + rows)` of a weight matrix in a buffer of their own: the values
/// plane at offset 0 and, for Q8G32/Q4G32, the scales plane at `scales.0`.
#[derive(Debug, Clone)]
pub struct MatrixBlock {
    pub row_start: usize,
    pub rows: usize,
    pub buffer: Arc<TrackedBuffer>,
    /// Bytes of the values plane, rounded up to 16 (it is read as vec4 words).
    pub values_size: u64,
    /// (offset, size) in bytes of the scales plane.
    pub scales: Option<(u64, u64)>,
}

impl MatrixBlock {
    pub(crate) fn values_binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: 0,
            size: wgpu::BufferSize::new(self.values_size),
        })
    }

    pub(crate) fn scales_binding<'a>(&'a self, ctx: &'a GpuContext) -> wgpu::BindingResource<'a> {
        match self.scales {
            Some((offset, size)) => {
                wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer: &self.buffer, offset, size: wgpu::BufferSize::new(size) })
            }
            None => ctx.dummy.as_entire_binding(),
        }
    }
}

/// A weight matrix `[rows, cols]` on the device, split by rows wherever one plane would exceed
/// the storage-binding limit (only vocabulary-sized matrices do in practice).
#[derive(Debug, Clone)]
pub struct GpuMatrix {
    pub rows: usize,
    pub cols: usize,
    pub dtype: DType,
    pub blocks: Vec<MatrixBlock>,
}

/// Bytes of one row's values plane.
fn values_row_bytes(cols: usize, dtype: DType) -> u64 {
    match dtype {
        DType::Q8G32 => cols as u64,
        DType::Q4G32 => cols as u64 / 2,
        DType::F16 | DType::Bf16 => cols as u64 * 2,
        DType::F32 => cols as u64 * 4,
    }
}

/// A block of `rows` rows as [`GpuMatrix::upload`] lays it out (from [`HostMatrix::gpu_bytes`]):
/// `(values_size, scales (offset, size), buffer length)`.
fn block_layout(rows: usize, cols: usize, dtype: DType) -> (u64, Option<(u64, u64)>, u64) {
    let values = rows as u64 * values_row_bytes(cols, dtype);
    let (values_end, bytes_len, scales_at) = if dtype.is_quantized() {
        let at = values.next_multiple_of(llava_lens_tensor::PLANE_ALIGN as u64);
        let scales = (rows * cols / llava_lens_tensor::GROUP_SIZE * 2) as u64;
        (at, (at + scales).next_multiple_of(4).max(4), Some(at))
    } else {
        let len = values.next_multiple_of(4).max(4);
        (len, len, None)
    };
    let values_size = values_end.next_multiple_of(16);
    let len = bytes_len.max(values_size).next_multiple_of(16);
    (values_size, scales_at.map(|o| (o, len - o)), len)
}

impl GpuMatrix {
    pub fn upload(ctx: &GpuContext, m: &HostMatrix, label: &str) -> Result<GpuMatrix, GpuError> {
        let per_block = Self::rows_per_block(ctx, m, label)?;
        let mut blocks = Vec::new();
        let mut start = 0;
        while start < m.rows {
            let end = (start + per_block).min(m.rows);
            let part = m.rows_range(start, end)?;
            let (mut bytes, scales_offset) = part.gpu_bytes();
            let values_end = scales_offset.unwrap_or(bytes.len());
            let values_size = (values_end as u64).next_multiple_of(16);
            bytes.resize((bytes.len().max(values_size as usize)).next_multiple_of(16), 0);
            let scales = scales_offset.map(|o| (o as u64, (bytes.len() - o) as u64));
            let buffer = TrackedBuffer::with_data(
                &ctx.device,
                &ctx.memory,
                &wgpu::util::BufferInitDescriptor {
                    label: Some(&format!("{label} rows {start}..{end}")),
                    contents: &bytes,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                },
            );
            blocks.push(MatrixBlock { row_start: start, rows: end - start, buffer, values_size, scales });
            start = end;
        }
        Ok(GpuMatrix { rows: m.rows, cols: m.cols, dtype: m.dtype(), blocks })
    }

    /// Buffers laid out exactly as [`GpuMatrix::upload`] lays out a `rows x cols` matrix in
    /// `dtype`, zero-filled, for [`GpuMatrix::write_rows`] to fill piece by piece (a loader that
    /// never holds a whole matrix in memory).
    pub fn allocate(ctx: &GpuContext, rows: usize, cols: usize, dtype: DType, label: &str) -> Result<GpuMatrix, GpuError> {
        let per_block = Self::rows_per_block_of(ctx, rows, cols, dtype, label)?;
        let mut blocks = Vec::new();
        let mut start = 0;
        while start < rows {
            let end = (start + per_block).min(rows);
            let (values_size, scales, len) = block_layout(end - start, cols, dtype);
            let buffer = TrackedBuffer::new(
                &ctx.device,
                &ctx.memory,
                &wgpu::BufferDescriptor {
                    label: Some(&format!("{label} rows {start}..{end}")),
                    size: len,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                },
            );
            blocks.push(MatrixBlock { row_start: start, rows: end - start, buffer, values_size, scales });
            start = end;
        }
        Ok(GpuMatrix { rows, cols, dtype, blocks })
    }

    /// Whether rows of this format can be written on their own: WebGPU copies whole 4-byte
    /// words, so each row's values (and scales) must be a multiple of 4 bytes.
    pub fn rows_writable(cols: usize, dtype: DType) -> bool {
        let scales_ok = !dtype.is_quantized() || (cols / llava_lens_tensor::GROUP_SIZE * 2).is_multiple_of(4);
        values_row_bytes(cols, dtype).is_multiple_of(4) && scales_ok
    }

    /// Writes `part` as rows `[start, start + part.rows)` of an [`GpuMatrix::allocate`]d matrix.
    /// Queued writes are flushed with an empty submit, so staging memory stays one part's size.
    pub fn write_rows(&self, ctx: &GpuContext, start: usize, part: &HostMatrix) -> Result<(), GpuError> {
        if part.cols != self.cols
            || part.dtype() != self.dtype
            || start + part.rows > self.rows
            || !Self::rows_writable(self.cols, self.dtype)
        {
            return Err(GpuError::shape(
                "write_rows",
                format!(
                    "{} rows of {} x {} at row {start} into a {} x {} {} matrix",
                    part.rows,
                    part.cols,
                    part.dtype(),
                    self.rows,
                    self.cols,
                    self.dtype
                ),
            ));
        }
        let values_row = values_row_bytes(self.cols, self.dtype);
        let scales_row = (self.cols / llava_lens_tensor::GROUP_SIZE * 2) as u64;
        for b in &self.blocks {
            let (lo, hi) = (start.max(b.row_start), (start + part.rows).min(b.row_start + b.rows));
            if lo >= hi {
                continue;
            }
            let sub = part.rows_range(lo - start, hi - start)?;
            let (bytes, scales_at) = sub.gpu_bytes();
            let n_values = (hi - lo) as u64 * values_row;
            let row_in_block = (lo - b.row_start) as u64;
            ctx.queue.write_buffer(&b.buffer, row_in_block * values_row, &bytes[..n_values as usize]);
            if let (Some(at), Some((plane, _))) = (scales_at, b.scales) {
                let n_scales = ((hi - lo) as u64 * scales_row) as usize;
                ctx.queue.write_buffer(&b.buffer, plane + row_in_block * scales_row, &bytes[at..at + n_scales]);
            }
        }
        ctx.queue.submit(std::iter::empty());
        Ok(())
    }

    /// Most rows whose values plane (rounded up to 16 bytes) fits one binding and whose whole
    /// block fits one buffer.
    fn rows_per_block(ctx: &GpuContext, m: &HostMatrix, label: &str) -> Result<usize, GpuError> {
        Self::rows_per_block_of(ctx, m.rows, m.cols, m.dtype(), label)
    }

    fn rows_per_block_of(ctx: &GpuContext, rows_total: usize, cols: usize, dtype: DType, label: &str) -> Result<usize, GpuError> {
        let values_row = values_row_bytes(cols, dtype);
        let total_row = dtype.row_bytes(cols) as u64;
        // Slack for the 256-byte plane alignment and the 16-byte rounding.
        let slack = 512;
        let binding = ctx.binding_limit().saturating_sub(slack);
        let buffer = ctx.limits().max_buffer_size.saturating_sub(slack);
        let rows = (binding / values_row.max(1)).min(buffer / total_row.max(1)) as usize;
        if rows == 0 {
            return Err(GpuError::shape(
                "upload",
                format!("{label}: one row needs {values_row} bytes but a storage binding holds {} here", ctx.binding_limit()),
            ));
        }
        Ok(rows.min(rows_total.max(1)))
    }
}
