//! Envelopes: a payload plus the bookkeeping that travels with it.
//!
//! An [`Envelope<T>`] carries a payload `T`, a sequence id, a timestamp and an
//! optional, lazily boxed [`Metadata`] block (headers, trace context, free-form
//! attributes and a [`Cost`] estimate). The metadata box is allocated only the
//! first time it is written through [`Envelope::metadata_mut`] (or one of the
//! setters built on it), so the fast path allocates nothing per item and an
//! `Envelope<u64>` stays a handful of machine words.

use std::fmt;
use std::fmt::Write as _;
use std::iter::FusedIterator;
use std::slice;

use tokio::time::Instant;

/// A payload travelling through a pipeline, with its sequence id, timestamp
/// and optional metadata.
///
/// Metadata is stored as `Option<Box<Metadata>>`: reading it never allocates,
/// and the box is created only on the first call to
/// [`metadata_mut`](Self::metadata_mut) (directly or through
/// [`set_header`](Self::set_header), [`set_trace`](Self::set_trace) or
/// [`set_cost`](Self::set_cost)).
#[derive(Debug, Clone)]
pub struct Envelope<T> {
    payload: T,
    seq: u64,
    timestamp: Instant,
    metadata: Option<Box<Metadata>>,
}

impl<T> Envelope<T> {
    /// Wraps `payload` with sequence id `seq`, timestamped with
    /// [`Instant::now`] (which follows tokio's paused clock in tests).
    pub fn new(payload: T, seq: u64) -> Self {
        Self::with_timestamp(payload, seq, Instant::now())
    }

    /// Wraps `payload` with sequence id `seq` and an explicit `timestamp`.
    pub fn with_timestamp(payload: T, seq: u64, timestamp: Instant) -> Self {
        Self {
            payload,
            seq,
            timestamp,
            metadata: None,
        }
    }

    /// Borrows the payload.
    pub fn payload(&self) -> &T {
        &self.payload
    }

    /// Mutably borrows the payload.
    pub fn payload_mut(&mut self) -> &mut T {
        &mut self.payload
    }

    /// Consumes the envelope and returns the payload, discarding the rest.
    pub fn into_payload(self) -> T {
        self.payload
    }

    /// The sequence id assigned when the envelope was created.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The creation timestamp.
    pub fn timestamp(&self) -> Instant {
        self.timestamp
    }

    /// The metadata, or `None` if none has been written yet. Never allocates.
    pub fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_deref()
    }

    /// Mutable access to the metadata, allocating an empty [`Metadata`] box on
    /// the first call.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        self.metadata.get_or_insert_with(Box::default)
    }

    /// Whether a metadata box has been allocated (i.e. whether
    /// [`metadata_mut`](Self::metadata_mut) has ever been called).
    pub fn has_metadata(&self) -> bool {
        self.metadata.is_some()
    }

    /// Transforms the payload with `f`, keeping the sequence id, timestamp and
    /// metadata (the metadata box is moved, not copied).
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Envelope<U> {
        Envelope {
            payload: f(self.payload),
            seq: self.seq,
            timestamp: self.timestamp,
            metadata: self.metadata,
        }
    }

    /// The value of header `name`, if metadata exists and the header is set.
    /// Never allocates.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.metadata()?.headers.get(name)
    }

    /// Sets header `name` to `value`, replacing any previous value, which is
    /// returned. Allocates the metadata box if needed.
    pub fn set_header(
        &mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Option<String> {
        self.metadata_mut().headers.insert(name, value)
    }

    /// The trace context, if metadata exists and one is set. Never allocates.
    pub fn trace(&self) -> Option<&TraceContext> {
        self.metadata()?.trace.as_ref()
    }

    /// Sets the trace context, returning the previous one. Allocates the
    /// metadata box if needed.
    pub fn set_trace(&mut self, trace: TraceContext) -> Option<TraceContext> {
        self.metadata_mut().trace.replace(trace)
    }

    /// The cost estimate, or [`Cost::ZERO`] if no metadata has been written.
    /// Never allocates.
    pub fn cost(&self) -> Cost {
        self.metadata().map_or(Cost::ZERO, |m| m.cost)
    }

    /// Sets the cost estimate. Allocates the metadata box if needed.
    pub fn set_cost(&mut self, cost: Cost) {
        self.metadata_mut().cost = cost;
    }
}

/// Metadata attached to an [`Envelope`], allocated lazily on first write.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    /// Protocol-level headers (e.g. propagated from or to HTTP / Kafka).
    pub headers: Headers,
    /// Distributed-tracing context, if any.
    pub trace: Option<TraceContext>,
    /// Free-form key/value attributes set by stages (same type as headers).
    pub attributes: Attributes,
    /// Estimated processing cost of the item.
    pub cost: Cost,
}

/// A small insertion-ordered string map backed by a `Vec<(String, String)>`.
///
/// Lookups are linear scans with exact (case-sensitive) key comparison, which
/// beats hashing for the handful of entries envelopes usually carry. Each key
/// appears at most once: [`insert`](Self::insert) replaces an existing value in
/// place, keeping the key's original position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Headers {
    entries: Vec<(String, String)>,
}

/// Free-form key/value attributes of an envelope; the same small ordered map
/// as [`Headers`].
pub type Attributes = Headers;

impl Headers {
    /// Creates an empty map (does not allocate).
    pub const fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// The value stored under `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
    }

    /// Sets `key` to `value`. If the key was present its value is replaced in
    /// place and the old value returned; otherwise the entry is appended and
    /// `None` returned.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> Option<String> {
        let key = key.into();
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => Some(std::mem::replace(v, value)),
            None => {
                self.entries.push((key, value));
                None
            }
        }
    }

    /// Removes `key`, returning its value if it was present. The relative
    /// order of the remaining entries is preserved.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let index = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(index).1)
    }

    /// Iterates over `(key, value)` pairs in insertion order.
    pub fn iter(&self) -> HeadersIter<'_> {
        HeadersIter {
            inner: self.entries.iter(),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Headers {
    /// Collects pairs; later duplicates of a key replace earlier values.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut headers = Self::new();
        for (k, v) in iter {
            headers.insert(k, v);
        }
        headers
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a str, &'a str);
    type IntoIter = HeadersIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over the `(key, value)` pairs of a [`Headers`] map, in insertion
/// order. Created by [`Headers::iter`].
#[derive(Debug, Clone)]
pub struct HeadersIter<'a> {
    inner: slice::Iter<'a, (String, String)>,
}

impl<'a> Iterator for HeadersIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl DoubleEndedIterator for HeadersIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.inner
            .next_back()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl ExactSizeIterator for HeadersIter<'_> {}

impl FusedIterator for HeadersIter<'_> {}

/// A W3C Trace Context (`traceparent`) plus baggage entries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// 16-byte trace id; all zeros is invalid.
    pub trace_id: [u8; 16],
    /// 8-byte parent span id; all zeros is invalid.
    pub span_id: [u8; 8],
    /// The `sampled` trace flag (bit 0 of the flags byte).
    pub sampled: bool,
    /// Baggage key/value pairs (W3C `baggage`), in order. Not part of the
    /// `traceparent` string.
    pub baggage: Vec<(String, String)>,
}

impl TraceContext {
    /// Creates a context with empty baggage.
    pub fn new(trace_id: [u8; 16], span_id: [u8; 8], sampled: bool) -> Self {
        Self {
            trace_id,
            span_id,
            sampled,
            baggage: Vec::new(),
        }
    }

    /// Formats the context as a version-00 W3C `traceparent` value:
    /// `00-<32 lowercase hex trace id>-<16 lowercase hex span id>-<01|00>`.
    /// Baggage is not included.
    pub fn to_traceparent(&self) -> String {
        let mut out = String::with_capacity(TRACEPARENT_LEN);
        out.push_str("00-");
        push_hex(&mut out, &self.trace_id);
        out.push('-');
        push_hex(&mut out, &self.span_id);
        out.push_str(if self.sampled { "-01" } else { "-00" });
        out
    }

    /// Parses a W3C `traceparent` value. Returns `None` (never panics) when the
    /// input is malformed:
    ///
    /// - version not two lowercase hex digits, or the forbidden version `ff`;
    /// - version `00` with a length other than 55 characters, or a later
    ///   version shorter than 55 characters or whose 56th character (if any)
    ///   is not `-`;
    /// - missing `-` separators, or fields that are not lowercase hex;
    /// - an all-zero trace id or span id.
    ///
    /// The returned context has empty baggage; `sampled` is bit 0 of the flags.
    pub fn from_traceparent(s: &str) -> Option<TraceContext> {
        let b = s.as_bytes();
        if b.len() < TRACEPARENT_LEN {
            return None;
        }
        let version = parse_hex::<1>(&b[0..2])?[0];
        match version {
            0xff => return None,
            0x00 if b.len() != TRACEPARENT_LEN => return None,
            // Future versions may append fields after another '-'.
            _ if b.len() > TRACEPARENT_LEN && b[TRACEPARENT_LEN] != b'-' => return None,
            _ => {}
        }
        if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let trace_id = parse_hex::<16>(&b[3..35])?;
        let span_id = parse_hex::<8>(&b[36..52])?;
        let flags = parse_hex::<1>(&b[53..55])?[0];
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceContext::new(trace_id, span_id, flags & 0x01 != 0))
    }
}

impl fmt::Display for TraceContext {
    /// Writes the `traceparent` form (see [`TraceContext::to_traceparent`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_traceparent())
    }
}

/// Length of a version-00 `traceparent` value: `2 + 1 + 32 + 1 + 16 + 1 + 2`.
const TRACEPARENT_LEN: usize = 55;

fn push_hex(out: &mut String, bytes: &[u8]) {
    for byte in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{byte:02x}");
    }
}

/// Parses exactly `2 * N` lowercase hex digits into `N` bytes.
fn parse_hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
    }
    Some(out)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

/// Estimated cost of processing an item, used for weighting and accounting.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    /// Approximate size of the item in bytes.
    pub bytes: u64,
    /// Relative CPU cost hint (unitless; `0.0` means unknown or negligible).
    pub cpu_hint: f32,
}

impl Cost {
    /// Zero bytes and a zero CPU hint; the cost of an envelope without
    /// metadata.
    pub const ZERO: Cost = Cost {
        bytes: 0,
        cpu_hint: 0.0,
    };

    /// Creates a cost estimate.
    pub const fn new(bytes: u64, cpu_hint: f32) -> Self {
        Self { bytes, cpu_hint }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const TRACE_ID: [u8; 16] = [
        0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47,
        0x36,
    ];
    const SPAN_ID: [u8; 8] = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];
    const W3C_EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn envelope_is_small_and_allocates_no_metadata_until_written() {
        assert!(std::mem::size_of::<Envelope<u64>>() <= 40);
        let mut env = Envelope::new(7u64, 1);
        assert!(!env.has_metadata());
        // Read-only accessors must not allocate.
        assert_eq!(env.metadata(), None);
        assert_eq!(env.header("x"), None);
        assert_eq!(env.trace(), None);
        assert_eq!(env.cost(), Cost::ZERO);
        assert!(!env.has_metadata());

        env.metadata_mut();
        assert!(env.has_metadata());
        assert_eq!(env.metadata(), Some(&Metadata::default()));
    }

    #[test]
    fn accessors_expose_payload_seq_and_timestamp() {
        let ts = Instant::now();
        let mut env = Envelope::with_timestamp(String::from("a"), 42, ts);
        assert_eq!(env.payload(), "a");
        env.payload_mut().push('b');
        assert_eq!(env.seq(), 42);
        assert_eq!(env.timestamp(), ts);
        assert_eq!(env.into_payload(), "ab");
    }

    #[tokio::test(start_paused = true)]
    async fn new_uses_tokio_clock() {
        let before = Instant::now();
        tokio::time::advance(Duration::from_secs(5)).await;
        let env = Envelope::new((), 0);
        assert_eq!(env.timestamp(), before + Duration::from_secs(5));
    }

    #[test]
    fn map_keeps_seq_timestamp_and_metadata() {
        let ts = Instant::now();
        let mut env = Envelope::with_timestamp(21u32, 9, ts);
        env.set_header("content-type", "json");
        env.metadata_mut().attributes.insert("stage", "parse");
        env.set_cost(Cost::new(128, 0.5));
        env.set_trace(TraceContext::new(TRACE_ID, SPAN_ID, true));

        let mapped: Envelope<String> = env.map(|n| (n * 2).to_string());
        assert_eq!(mapped.payload(), "42");
        assert_eq!(mapped.seq(), 9);
        assert_eq!(mapped.timestamp(), ts);
        assert_eq!(mapped.header("content-type"), Some("json"));
        assert_eq!(
            mapped.metadata().unwrap().attributes.get("stage"),
            Some("parse")
        );
        assert_eq!(mapped.cost(), Cost::new(128, 0.5));
        assert_eq!(mapped.trace().unwrap().trace_id, TRACE_ID);

        let plain = Envelope::new(1u8, 0).map(u16::from);
        assert!(!plain.has_metadata());
    }

    #[test]
    fn clone_copies_metadata() {
        let mut env = Envelope::new(vec![1, 2], 3);
        env.set_header("k", "v");
        let copy = env.clone();
        env.set_header("k", "changed");
        assert_eq!(copy.header("k"), Some("v"));
        assert_eq!(copy.payload(), &[1, 2]);
    }

    #[test]
    fn set_header_replaces_and_returns_previous() {
        let mut env = Envelope::new((), 0);
        assert_eq!(env.set_header("a", "1"), None);
        assert_eq!(env.set_header("a", "2"), Some("1".to_owned()));
        assert_eq!(env.header("a"), Some("2"));
        assert_eq!(env.header("A"), None, "keys are case-sensitive");
        assert_eq!(env.metadata().unwrap().headers.len(), 1);
    }

    #[test]
    fn headers_map_operations() {
        let mut h = Headers::new();
        assert!(h.is_empty());
        assert_eq!(h.insert("a", "1"), None);
        assert_eq!(h.insert("b", "2"), None);
        assert_eq!(h.insert("c", "3"), None);
        assert_eq!(h.insert("a", "10"), Some("1".to_owned()));
        assert_eq!(h.len(), 3);
        assert!(h.contains_key("b"));
        // Replacement keeps the original position.
        let pairs: Vec<_> = h.iter().collect();
        assert_eq!(pairs, [("a", "10"), ("b", "2"), ("c", "3")]);

        assert_eq!(h.remove("b"), Some("2".to_owned()));
        assert_eq!(h.remove("b"), None);
        assert_eq!(h.get("b"), None);
        let keys: Vec<_> = (&h).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "c"]);
        assert_eq!(h.iter().len(), 2);
        assert_eq!(h.iter().next_back(), Some(("c", "3")));

        let collected: Attributes = [("x", "1"), ("y", "2"), ("x", "3")].into_iter().collect();
        assert_eq!(collected.len(), 2);
        assert_eq!(collected.get("x"), Some("3"));
    }

    #[test]
    fn traceparent_round_trip() {
        let ctx = TraceContext::from_traceparent(W3C_EXAMPLE).unwrap();
        assert_eq!(ctx.trace_id, TRACE_ID);
        assert_eq!(ctx.span_id, SPAN_ID);
        assert!(ctx.sampled);
        assert!(ctx.baggage.is_empty());
        assert_eq!(ctx.to_traceparent(), W3C_EXAMPLE);
        assert_eq!(ctx.to_string(), W3C_EXAMPLE);

        let unsampled = TraceContext::new(TRACE_ID, SPAN_ID, false);
        let text = unsampled.to_traceparent();
        assert_eq!(
            text,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
        );
        assert_eq!(TraceContext::from_traceparent(&text), Some(unsampled));
    }

    #[test]
    fn traceparent_flags_use_sampled_bit_only() {
        let s = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03";
        assert!(TraceContext::from_traceparent(s).unwrap().sampled);
        let s = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02";
        assert!(!TraceContext::from_traceparent(s).unwrap().sampled);
    }

    #[test]
    fn traceparent_accepts_future_versions_with_extra_fields() {
        let s = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future";
        let ctx = TraceContext::from_traceparent(s).unwrap();
        assert_eq!(ctx.trace_id, TRACE_ID);
        let s = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x";
        assert_eq!(TraceContext::from_traceparent(s), None);
    }

    #[test]
    fn traceparent_rejects_malformed_input() {
        let rejected = [
            "",
            "00",
            // wrong length for version 00
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            // unknown / forbidden version
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // non-hex and upper-case hex
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bg-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            // all-zero ids
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // separators in the wrong place or missing
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47360-0f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7+01",
            // multi-byte UTF-8 must not cause a slicing panic
            "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01",
            "é0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ];
        for input in rejected {
            assert_eq!(
                TraceContext::from_traceparent(input),
                None,
                "should reject {input:?}"
            );
        }
    }

    #[test]
    fn cost_defaults_to_zero() {
        assert_eq!(Cost::default(), Cost::ZERO);
        let mut env = Envelope::new(0u8, 0);
        env.set_cost(Cost::new(10, 1.5));
        let copied = env.cost();
        assert_eq!(copied.bytes, 10);
        assert_eq!(copied.cpu_hint, 1.5);
    }
}
