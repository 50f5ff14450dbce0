//! Batches: the output of windowing / accumulating stages.
//!
//! A [`Batch<T, K>`] is a `Vec<T>` together with the time window it covers,
//! the total byte size of its items and an optional key (`K = ()` for
//! unkeyed batches). It dereferences to `[T]`, so slice methods such as
//! `iter`, `first` or indexing work directly on it.

use std::ops::Deref;
use std::slice;
use std::time::Duration;
use std::vec;

use tokio::time::Instant;

/// Items collected over a time window, optionally grouped under a key.
///
/// The key type defaults to `()`, so `Batch<T>` is an unkeyed batch. The
/// window bounds and byte total are recorded as given by the producer; they
/// are not checked against the items.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Batch<T, K = ()> {
    key: K,
    items: Vec<T>,
    window_start: Instant,
    window_end: Instant,
    total_bytes: u64,
}

impl<T, K> Batch<T, K> {
    /// Creates a batch of `items` under `key`, covering
    /// `window_start..window_end` and weighing `total_bytes` in total.
    ///
    /// Use `()` as the key for an unkeyed batch.
    pub fn new(
        key: K,
        items: Vec<T>,
        window_start: Instant,
        window_end: Instant,
        total_bytes: u64,
    ) -> Self {
        Self {
            key,
            items,
            window_start,
            window_end,
            total_bytes,
        }
    }

    /// The items, in order.
    pub fn items(&self) -> &[T] {
        &self.items
    }

    /// Consumes the batch and returns its items.
    pub fn into_items(self) -> Vec<T> {
        self.items
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the batch has no items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Number of items; the same as [`len`](Self::len), named for reports.
    pub fn total_items(&self) -> usize {
        self.items.len()
    }

    /// Total size of the items in bytes, as recorded by the producer.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Start of the window the batch covers.
    pub fn window_start(&self) -> Instant {
        self.window_start
    }

    /// End of the window the batch covers.
    pub fn window_end(&self) -> Instant {
        self.window_end
    }

    /// Length of the window, `window_end - window_start`, or zero if the end
    /// precedes the start.
    pub fn window_duration(&self) -> Duration {
        self.window_end.saturating_duration_since(self.window_start)
    }

    /// The batch key (`&()` for unkeyed batches).
    pub fn key(&self) -> &K {
        &self.key
    }

    /// Consumes the batch and returns
    /// `(key, items, window_start, window_end, total_bytes)`.
    pub fn into_parts(self) -> (K, Vec<T>, Instant, Instant, u64) {
        (
            self.key,
            self.items,
            self.window_start,
            self.window_end,
            self.total_bytes,
        )
    }
}

impl<T, K> Deref for Batch<T, K> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        &self.items
    }
}

impl<T, K> AsRef<[T]> for Batch<T, K> {
    fn as_ref(&self) -> &[T] {
        &self.items
    }
}

impl<T, K> IntoIterator for Batch<T, K> {
    type Item = T;
    type IntoIter = vec::IntoIter<T>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

impl<'a, T, K> IntoIterator for &'a Batch<T, K> {
    type Item = &'a T;
    type IntoIter = slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> (Instant, Instant) {
        let start = Instant::now();
        (start, start + Duration::from_millis(250))
    }

    #[test]
    fn unkeyed_batch_accessors() {
        let (start, end) = window();
        let batch: Batch<u32> = Batch::new((), vec![1, 2, 3], start, end, 12);
        assert_eq!(batch.items(), &[1, 2, 3]);
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.total_items(), 3);
        assert!(!batch.is_empty());
        assert_eq!(batch.total_bytes(), 12);
        assert_eq!(batch.window_start(), start);
        assert_eq!(batch.window_end(), end);
        assert_eq!(batch.window_duration(), Duration::from_millis(250));
        assert_eq!(batch.key(), &());
        assert_eq!(batch.into_items(), vec![1, 2, 3]);
    }

    #[test]
    fn keyed_batch_and_into_parts() {
        let (start, end) = window();
        let batch = Batch::new("user-7".to_owned(), vec!['a', 'b'], start, end, 2);
        assert_eq!(batch.key(), "user-7");
        let (key, items, s, e, bytes) = batch.into_parts();
        assert_eq!(key, "user-7");
        assert_eq!(items, vec!['a', 'b']);
        assert_eq!((s, e, bytes), (start, end, 2));
    }

    #[test]
    fn empty_batch() {
        let (start, end) = window();
        let batch: Batch<String> = Batch::new((), Vec::new(), start, end, 0);
        assert!(batch.is_empty());
        assert_eq!(batch.len(), 0);
        assert_eq!(batch.total_items(), 0);
        assert_eq!(batch.into_iter().count(), 0);
    }

    #[test]
    fn window_duration_saturates_when_inverted() {
        let (start, end) = window();
        let batch = Batch::new((), vec![1u8], end, start, 1);
        assert_eq!(batch.window_duration(), Duration::ZERO);
    }

    #[test]
    fn iterates_by_value_and_by_reference() {
        let (start, end) = window();
        let batch = Batch::new(1u8, vec![10, 20, 30], start, end, 3);

        let mut sum = 0;
        for item in &batch {
            sum += *item;
        }
        assert_eq!(sum, 60);

        let owned: Vec<i32> = batch.into_iter().map(|x| x + 1).collect();
        assert_eq!(owned, vec![11, 21, 31]);
    }

    #[test]
    fn derefs_to_slice() {
        let (start, end) = window();
        let batch = Batch::new((), vec![5, 6, 7], start, end, 3);
        assert_eq!(batch[1], 6);
        assert_eq!(batch.first(), Some(&5));
        assert_eq!(batch.iter().max(), Some(&7));
        assert!(batch.contains(&7));
        let slice: &[i32] = &batch;
        assert_eq!(slice, &[5, 6, 7]);
        assert_eq!(batch.as_ref(), &[5, 6, 7]);
    }

    #[test]
    fn clone_and_eq() {
        let (start, end) = window();
        let batch = Batch::new('k', vec![1, 2], start, end, 8);
        let copy = batch.clone();
        assert_eq!(batch, copy);
        let other = Batch::new('j', vec![1, 2], start, end, 8);
        assert_ne!(batch, other);
    }
}
