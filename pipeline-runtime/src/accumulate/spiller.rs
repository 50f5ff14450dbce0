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

/// Reads a spilled key and state back.
type Decode<K, S> = fn(&mut &[u8]) -> Result<(K, S), SpillError>;

/// States go to a [`SpillStore`] on disk: the key and the state, encoded
/// with [`Spill`], one checksummed record per key.
///
/// The encoding is captured as functions when the spiller is made (where
/// `K: Spill` and `S: Spill` are checked), so that a type that cannot be
/// spilled is reported once, where `spill` is asked for.
pub struct DiskSpill<K, S> {
    max_memory: u64,
    store: SpillStore,
    buf: Vec<u8>,
    encode: fn(&K, &S, &mut Vec<u8>),
    decode: Decode<K, S>,
    same_key: fn(&K, &K) -> bool,
}

impl<K: Spill + Eq, S: Spill> DiskSpill<K, S> {
    /// A spiller with the budget and directory of `policy` (no budget, so
    /// never spilling, without one). Does no I/O until the first spill.
    pub fn new(policy: Option<&SpillPolicy>) -> Self {
        DiskSpill {
            max_memory: policy.map_or(u64::MAX, |p| p.max_memory),
            store: SpillStore::new(policy.and_then(|p| p.dir.clone())),
            buf: Vec::new(),
            encode: |key, state, out| {
                key.encode(out);
                state.encode(out);
            },
            decode: |input| Ok((K::decode(input)?, S::decode(input)?)),
            same_key: |a, b| a == b,
        }
    }
}

impl<K, S> DiskSpill<K, S> {
    /// The store the states go to.
    pub fn store(&self) -> &SpillStore {
        &self.store
    }
}

impl<K, S> std::fmt::Debug for DiskSpill<K, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskSpill")
            .field("max_memory", &self.max_memory)
            .field("store", &self.store)
            .finish()
    }
}

impl<K, S> Spiller<K, S> for DiskSpill<K, S> {
    const ENABLED: bool = true;

    fn max_memory(&self) -> u64 {
        self.max_memory
    }

    fn put(&mut self, id: u64, key: &K, state: &S) -> Result<u64, SpillError> {
        self.buf.clear();
        (self.encode)(key, state, &mut self.buf);
        self.store.put(id, &self.buf)?;
        Ok(self.buf.len() as u64)
    }

    fn take(&mut self, id: u64, key: &K) -> Result<S, SpillError> {
        let bytes = self.store.take(id)?;
        let mut input = bytes.as_slice();
        let (stored, state) = (self.decode)(&mut input)?;
        if !(self.same_key)(&stored, key) {
            return Err(SpillError::InvalidData {
                what: "spill record",
                detail: format!("record {id} holds the state of another key"),
            });
        }
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
