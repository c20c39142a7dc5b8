//! Bind groups kept and reused instead of made for every dispatch. A bind group is fixed by its
//! layout and the buffer ranges it binds; a decode step records the same dispatches on the same
//! buffers every token (weights, pooled activations, the same uniform chunk at per-dispatch
//! dynamic offsets), so after the first token its bind groups all come from here.
//!
//! A kept bind group holds its buffers alive, so the entries that bind a buffer are forgotten
//! when that buffer is released (a tensor's buffer freed rather than pooled, a uniform chunk the
//! pool does not keep): nothing outlives its owner, and the memory accounting stays true.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU64;
use std::sync::Mutex;

/// One binding of a kept bind group: slot, buffer, offset, size.
type Binding = (u32, wgpu::Buffer, u64, Option<NonZeroU64>);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    /// The pipeline's address: pipelines are cached for the context's lifetime, so it names
    /// one bind-group layout.
    layout: usize,
    bindings: Vec<Binding>,
}

/// More entries than a few models' worth of distinct dispatches means something keeps making
/// new combinations: start over rather than grow.
const MAX_ENTRIES: usize = 16384;

#[derive(Debug, Default)]
struct Entries {
    groups: HashMap<Key, (u64, wgpu::BindGroup)>,
    keys: HashMap<u64, Key>,
    /// The entries that bind each buffer, to forget them when it is released.
    by_buffer: HashMap<wgpu::Buffer, HashSet<u64>>,
    next_id: u64,
}

#[derive(Debug, Default)]
pub(crate) struct BindGroupCache {
    entries: Mutex<Entries>,
}

impl BindGroupCache {
    /// The bind group of `layout` (named by `layout_id`) over `bindings`, made by `make` only the
    /// first time; the flag says whether it was made now.
    pub fn get_or_make(
        &self,
        layout_id: usize,
        bindings: &[wgpu::BindGroupEntry<'_>],
        make: impl FnOnce() -> wgpu::BindGroup,
    ) -> (wgpu::BindGroup, bool) {
        let Some(key) = key(layout_id, bindings) else { return (make(), true) };
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, group)) = e.groups.get(&key) {
            return (group.clone(), false);
        }
        if e.groups.len() >= MAX_ENTRIES {
            *e = Entries::default();
        }
        let group = make();
        let id = e.next_id;
        e.next_id += 1;
        for (_, buffer, _, _) in &key.bindings {
            e.by_buffer.entry(buffer.clone()).or_default().insert(id);
        }
        e.keys.insert(id, key.clone());
        e.groups.insert(key, (id, group.clone()));
        (group, true)
    }

    /// Forgets every bind group that binds `buffer` (it is being released), and with them every
    /// reference they held to other buffers.
    pub fn forget(&self, buffer: &wgpu::Buffer) {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let Some(ids) = e.by_buffer.remove(buffer) else { return };
        for id in ids {
            let Some(key) = e.keys.remove(&id) else { continue };
            for (_, other, _, _) in &key.bindings {
                if let Some(set) = e.by_buffer.get_mut(other) {
                    set.remove(&id);
                    if set.is_empty() {
                        e.by_buffer.remove(other);
                    }
                }
            }
            e.groups.remove(&key);
        }
    }

    /// Kept bind groups, and the buffers they bind.
    pub fn len(&self) -> (usize, usize) {
        let e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        (e.groups.len(), e.by_buffer.len())
    }
}

/// The cache key of a bind group over buffer bindings only (every kernel's case); None for any
/// other resource.
fn key(layout: usize, bindings: &[wgpu::BindGroupEntry<'_>]) -> Option<Key> {
    let bindings = bindings
        .iter()
        .map(|b| match &b.resource {
            wgpu::BindingResource::Buffer(buf) => Some((b.binding, buf.buffer.clone(), buf.offset, buf.size)),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Key { layout, bindings })
}
