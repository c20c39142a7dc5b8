use thiserror::Error;

/// Errors from building or converting host tensors. Each names the shape or value at fault.
#[derive(Debug, Error, PartialEq)]
pub enum TensorError {
    #[error("{what}: expected {expected} elements for shape {shape:?}, found {found}")]
    Length { what: &'static str, shape: Vec<usize>, expected: usize, found: usize },
    #[error("{format} needs the inner dimension (K = {cols}) to be a multiple of {group}")]
    GroupAlignment { format: &'static str, cols: usize, group: usize },
    #[error("{0} is a load-only dtype: convert it to f32 or f16 first")]
    LoadOnly(&'static str),
    #[error("unknown dtype {0:?}: expected one of f32, f16, bf16, q8, q4")]
    UnknownDType(String),
    #[error("row range {start}..{end} is outside a matrix of {rows} rows")]
    RowRange { start: usize, end: usize, rows: usize },
    #[error("token id {id} at position {pos} is outside the vocabulary of {vocab} rows")]
    TokenId { id: u32, pos: usize, vocab: usize },
    #[error("{0}")]
    Shape(String),
}
