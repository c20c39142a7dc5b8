//! Typed reads of config.json values, errors naming the file and the key's full path.

use std::path::Path;

use serde_json::Value;

use crate::ModelError;

/// Typed access to one JSON object, errors naming the file and the key's full path.
pub(super) struct Reader<'a> {
    pub(super) path: &'a Path,
    pub(super) prefix: &'a str,
    pub(super) v: &'a Value,
}

impl<'a> Reader<'a> {
    pub(super) fn key(&self, k: &str) -> String {
        if self.prefix.is_empty() { k.to_string() } else { format!("{}.{k}", self.prefix) }
    }

    pub(super) fn wrong(&self, k: &str, expected: &str, found: &Value) -> ModelError {
        ModelError::config(self.path, format!("{} is {found}; expected {expected}", self.key(k)))
    }

    pub(super) fn child(&self, k: &'static str) -> Result<Reader<'a>, ModelError> {
        self.child_opt(k)?.ok_or_else(|| ModelError::config(self.path, format!("missing {}", self.key(k))))
    }

    pub(super) fn child_opt(&self, k: &'static str) -> Result<Option<Reader<'a>>, ModelError> {
        match self.v.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v @ Value::Object(_)) => Ok(Some(Reader { path: self.path, prefix: k, v })),
            Some(other) => Err(self.wrong(k, "an object", other)),
        }
    }

    pub(super) fn usize_or(&self, k: &str, default: usize) -> Result<usize, ModelError> {
        match self.v.get(k) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => {
                v.as_u64().filter(|&n| n <= u32::MAX as u64).map(|n| n as usize).ok_or_else(|| self.wrong(k, "a non-negative integer", v))
            }
        }
    }

    pub(super) fn f32_or(&self, k: &str, default: f32) -> Result<f32, ModelError> {
        match self.v.get(k) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_f64().filter(|x| x.is_finite()).map(|x| x as f32).ok_or_else(|| self.wrong(k, "a number", v)),
        }
    }

    pub(super) fn str_or(&self, k: &str, default: &str) -> Result<String, ModelError> {
        match self.v.get(k) {
            None | Some(Value::Null) => Ok(default.to_string()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v) => Err(self.wrong(k, "a string", v)),
        }
    }
}
