//! Whether an accumulation may spill: [`NoSpill`] or [`DiskSpill`], chosen
//! when it is built.

use super::SpillPolicy;
use super::codec::{Spill, SpillError};
use super::spill::SpillStore;

/// Where an [`AccumulateHead`](super::AccumulateHead) puts the state of
/// cold keys when it is over its memory budget.
///
/// The two implementations are chosen at construction:
/// [`AccumulateHead::new`](super::AccumulateHead::new) never spills
/// ([`NoSpill`], no `Spill` bounds, and no per-item cost), and
/// [`AccumulateHead::spilling`](super::AccumulateHead::spilling) spills to
/// disk ([`DiskSpill`], which needs `Key: Spill` and `State: Spill`).
pub trait Spiller<K, S> {
    /// Whether this ever spills. When it is `false` the engine skips all the
    /// bookkeeping spilling needs.
    const ENABLED: bool;

    /// The memory budget of the states, in bytes.
    fn max_memory(&self) -> u64;

    /// Writes the state of `key` as record `id`, returning the bytes
    /// written. On error the state stays in memory.
    ///
    /// # Errors
    ///
    /// Whatever the store reports (a full disk, a missing directory).
    fn put(&mut self, id: u64, key: &K, state: &S) -> Result<u64, SpillError>;

    /// Reads record `id` back as the state of `key`, removing it.
    ///
    /// # Errors
    ///
    /// A missing, unreadable or corrupt record, or one that holds another
    /// key.
    fn take(&mut self, id: u64, key: &K) -> Result<S, SpillError>;
}

/// Never spills: every state stays in memory.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSpill;

impl<K, S> Spiller<K, S> for NoSpill {
    const ENABLED: bool = false;

    fn max_memory(&self) -> u64 {
        u64::MAX
    }

    fn put(&mut self, id: u64, _: &K, _: &S) -> Result<u64, SpillError> {
        // Never called: the engine does not spill when `ENABLED` is false.
        Err(SpillError::Missing { id })
    }

    fn take(&mut self, id: u64, _: &K) -> Result<S, SpillError> {
        Err(SpillError::Missing { id })
    }
}

/// Spills to a [`SpillStore`] on disk: each record is the key then the state,
/// encoded with [`Spill`]; reading it back checks that it holds the key
/// asked for.
#[derive(Debug)]
pub struct DiskSpill {
    max_memory: u64,
    store: SpillStore,
    buf: Vec<u8>,
}

impl DiskSpill {
    /// A spiller with `policy`'s budget and directory; `None` never spills
    /// (an infinite budget). Does no I/O until the first spill.
    pub fn new(policy: Option<&SpillPolicy>) -> Self {
        DiskSpill {
            max_memory: policy.map_or(u64::MAX, |p| p.max_memory),
            store: SpillStore::new(policy.and_then(|p| p.dir.clone())),
            buf: Vec::new(),
        }
    }

    /// The store the states go to.
    pub fn store(&self) -> &SpillStore {
        &self.store
    }
}

impl<K: Spill + Eq, S: Spill> Spiller<K, S> for DiskSpill {
    const ENABLED: bool = true;

    fn max_memory(&self) -> u64 {
        self.max_memory
    }

    fn put(&mut self, id: u64, key: &K, state: &S) -> Result<u64, SpillError> {
        self.buf.clear();
        key.encode(&mut self.buf);
        state.encode(&mut self.buf);
        self.store.put(id, &self.buf)?;
        Ok(self.buf.len() as u64)
    }

    fn take(&mut self, id: u64, key: &K) -> Result<S, SpillError> {
        let bytes = self.store.take(id)?;
        let mut input = bytes.as_slice();
        let stored = K::decode(&mut input)?;
        if stored != *key {
            return Err(SpillError::InvalidData {
                what: "spill record",
                detail: format!("record {id} holds the state of another key"),
            });
        }
        let state = S::decode(&mut input)?;
        if !input.is_empty() {
            return Err(SpillError::InvalidData {
                what: "spill record",
                detail: format!(
                    "{} unexpected bytes after the state of record {id}",
                    input.len()
                ),
            });
        }
        Ok(state)
    }
}
