//! Envelopes: a payload plus the bookkeeping that travels with it.
//!
//! An [`Envelope<T>`] carries a payload `T`, a sequence id, a timestamp and an
//! optional, lazily boxed [`Metadata`] block (headers, trace context, free-form
//! attributes and a [`Cost`] estimate). The metadata box is allocated only the
//! first time it is written through [`Envelope::metadata_mut`] (or one of the
//! setters built on it), so the fast path allocates nothing per item and an
//! `Envelope<u64>` stays a handful of machine words.
//!
//! # Trace context
//!
//! A [`TraceContext`] reads and writes the W3C Trace Context `traceparent`
//! header and the W3C `baggage` header:
//! [`TraceContext::from_headers`] and [`TraceContext::inject_into`] on any
//! [`Headers`], and [`Envelope::trace_from_headers`],
//! [`Envelope::extract_trace_from_headers`] and
//! [`Envelope::inject_trace_into_headers`] between an envelope's headers
//! and its trace context. That is how a trace crosses into and out of a
//! pipeline (from an HTTP request or a Kafka record, to the next service):
//!
//! * a source that reads records with headers copies them into each
//!   envelope and calls [`Envelope::extract_trace_from_headers`], so the
//!   envelope's [`trace`](Envelope::trace) is the caller's context;
//! * each stage wrapped in [`traced`](crate::trace::traced) runs an item's
//!   work in a `tracing` span of that trace, a child of the item's context,
//!   and hands its outputs on with the [`child`](TraceContext::child)
//!   context: same trace id and flags, a new span id whose parent is the
//!   previous one. The `traceparent` advances one hop per traced stage;
//! * a sink that writes records with headers calls
//!   [`Envelope::inject_trace_into_headers`] first, so the next service
//!   continues the trace from the last stage's span.
//!
//! The envelope's [`trace`](Envelope::trace) is the context of record
//! inside the pipeline: traced stages advance it and leave the headers as
//! they came, so a `traceparent` header read on the way in is stale until
//! it is injected again. See [`crate::trace`] for the whole path, with
//! examples.
//!
//! The runtime follows an item's context only through the stages that are
//! [`traced`](crate::trace::traced) (its items being envelopes); an
//! untraced stage that passes the envelope along keeps the context as it
//! is ([`Envelope::map`] keeps it, as it keeps all the metadata), and an
//! item without a context passes through traced stages without starting a
//! trace. Each stage's own `tracing` span (see [`crate::metrics`]) is per
//! stage; a traced stage's per-item spans are its children.
//!
//! The context itself, and the `traceparent` and `baggage` formats, are
//! [`crate::trace::context`]'s; this module carries it in the envelope
//! and its headers.

use std::iter::FusedIterator;
use std::slice;

use tokio::time::Instant;

pub use crate::trace::context::{BAGGAGE_HEADER, TRACEPARENT_HEADER, TraceContext};

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
    /// metadata (the metadata box is moved, not copied), trace context
    /// included.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Envelope<U> {
        Envelope {
            payload: f(self.payload),
            seq: self.seq,
            timestamp: self.timestamp,
            metadata: self.metadata,
        }
    }

    /// Takes the payload out, leaving the rest of the envelope (sequence id,
    /// timestamp and metadata) as an `Envelope<()>`, which
    /// [`map`](Self::map) wraps around a new payload. Moves the metadata box,
    /// allocating nothing.
    ///
    /// ```
    /// use pipeline_runtime::envelope::Envelope;
    ///
    /// let mut env = Envelope::new("42", 7);
    /// env.set_header("source", "orders");
    /// let (text, rest) = env.split_payload();
    /// let parsed: Envelope<u32> = rest.map(|()| text.parse().unwrap());
    /// assert_eq!((*parsed.payload(), parsed.seq()), (42, 7));
    /// assert_eq!(parsed.header("source"), Some("orders"));
    /// ```
    pub fn split_payload(self) -> (T, Envelope<()>) {
        let rest = Envelope {
            payload: (),
            seq: self.seq,
            timestamp: self.timestamp,
            metadata: self.metadata,
        };
        (self.payload, rest)
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

    /// The trace context carried in the envelope's headers (`traceparent`,
    /// and `baggage` if present; see [`TraceContext::from_headers`]), or
    /// `None` if there is none or it is malformed. Never allocates unless
    /// there is one; does not change the envelope's own
    /// [`trace`](Self::trace).
    pub fn trace_from_headers(&self) -> Option<TraceContext> {
        TraceContext::from_headers(&self.metadata()?.headers)
    }

    /// Sets the envelope's [`trace`](Self::trace) from its headers, if they
    /// carry a valid `traceparent`, and returns it; leaves the envelope
    /// unchanged (and returns `None`) otherwise.
    pub fn extract_trace_from_headers(&mut self) -> Option<&TraceContext> {
        let trace = self.trace_from_headers()?;
        let metadata = self.metadata_mut();
        metadata.trace = Some(trace);
        metadata.trace.as_ref()
    }

    /// Writes the envelope's [`trace`](Self::trace) into its headers
    /// (`traceparent`, and `baggage`; see [`TraceContext::inject_into`]),
    /// so that whatever takes the headers on (an HTTP request, a Kafka
    /// record) carries the trace. Returns `false`, changing nothing, if the
    /// envelope has no trace context.
    pub fn inject_trace_into_headers(&mut self) -> bool {
        let Some(metadata) = self.metadata.as_deref_mut() else {
            return false;
        };
        let Some(trace) = &metadata.trace else {
            return false;
        };
        trace.inject_into(&mut metadata.headers);
        true
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

impl TraceContext {
    /// Reads a trace context from `headers`: the `traceparent` header
    /// (parsed with [`from_traceparent`](Self::from_traceparent)), and the
    /// `baggage` header if there is one (see
    /// [`parse_baggage`](Self::parse_baggage)). Header names match without
    /// regard to case, as in HTTP; surrounding spaces and tabs are trimmed.
    /// Returns `None` without a valid `traceparent`, whatever the baggage.
    pub fn from_headers(headers: &Headers) -> Option<TraceContext> {
        let traceparent = header_ignoring_case(headers, TRACEPARENT_HEADER)?;
        let mut trace = TraceContext::from_traceparent(traceparent.trim_matches([' ', '\t']))?;
        if let Some(baggage) = header_ignoring_case(headers, BAGGAGE_HEADER) {
            trace.baggage = TraceContext::parse_baggage(baggage);
        }
        Some(trace)
    }

    /// Writes the context into `headers`: `traceparent` (see
    /// [`to_traceparent`](Self::to_traceparent)), and `baggage` (see
    /// [`baggage_header`](Self::baggage_header)) if the baggage is not
    /// empty; existing `traceparent` and `baggage` headers, whatever their
    /// case, are replaced (an empty baggage removes the header), so the
    /// headers then carry exactly this context.
    pub fn inject_into(&self, headers: &mut Headers) {
        remove_ignoring_case(headers, TRACEPARENT_HEADER);
        remove_ignoring_case(headers, BAGGAGE_HEADER);
        headers.insert(TRACEPARENT_HEADER, self.to_traceparent());
        if !self.baggage.is_empty() {
            headers.insert(BAGGAGE_HEADER, self.baggage_header());
        }
    }
}

/// The value of `name` in `headers`, matching exactly first, then without
/// regard to case.
fn header_ignoring_case<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers.get(name).or_else(|| {
        headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    })
}

/// Removes every header called `name`, whatever its case.
fn remove_ignoring_case(headers: &mut Headers, name: &str) {
    headers
        .entries
        .retain(|(key, _)| !key.eq_ignore_ascii_case(name));
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
    fn trace_context_round_trips_through_headers() {
        let mut trace = TraceContext::new(TRACE_ID, SPAN_ID, true);
        trace.baggage = vec![
            ("user".to_owned(), "alice".to_owned()),
            ("note".to_owned(), "a b,c;d%e=é".to_owned()),
        ];
        let mut headers = Headers::new();
        headers.insert("content-type", "json");
        headers.insert("Traceparent", "stale");
        trace.inject_into(&mut headers);
        assert_eq!(headers.get("traceparent"), Some(W3C_EXAMPLE));
        assert_eq!(headers.get("Traceparent"), None, "the stale one is gone");
        assert_eq!(
            headers.get("baggage"),
            Some("user=alice,note=a%20b%2Cc%3Bd%25e=%C3%A9")
        );
        assert_eq!(headers.get("content-type"), Some("json"));
        assert_eq!(TraceContext::from_headers(&headers), Some(trace.clone()));

        // Without baggage, the header goes.
        let plain = TraceContext::new(TRACE_ID, SPAN_ID, false);
        plain.inject_into(&mut headers);
        assert_eq!(headers.get("baggage"), None);
        assert_eq!(TraceContext::from_headers(&headers), Some(plain));
    }

    #[test]
    fn trace_headers_match_without_case_and_ignore_properties() {
        let headers: Headers = [
            ("TraceParent", format!(" {W3C_EXAMPLE}\t")),
            (
                "BAGGAGE",
                "k1 = v1 ;prop=1, k2=v%2C2,broken,=empty, k3=%zz".to_owned(),
            ),
        ]
        .into_iter()
        .collect();
        let trace = TraceContext::from_headers(&headers).unwrap();
        assert_eq!(
            (trace.trace_id, trace.span_id, trace.sampled),
            (TRACE_ID, SPAN_ID, true)
        );
        let baggage: Vec<(&str, &str)> = trace
            .baggage
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(baggage, [("k1", "v1"), ("k2", "v,2"), ("k3", "%zz")]);

        let bad: Headers = [("traceparent", "00-nope"), ("baggage", "k=v")]
            .into_iter()
            .collect();
        assert_eq!(TraceContext::from_headers(&bad), None);
        assert_eq!(TraceContext::from_headers(&Headers::new()), None);
    }

    #[test]
    fn envelope_moves_its_trace_between_headers_and_context() {
        let mut incoming = Envelope::new("order", 1);
        assert_eq!(incoming.trace_from_headers(), None);
        assert!(!incoming.has_metadata(), "reading allocates nothing");
        assert!(!incoming.inject_trace_into_headers());
        incoming.set_header("traceparent", W3C_EXAMPLE);
        incoming.set_header("baggage", "tenant=acme");
        assert_eq!(incoming.trace(), None);
        let extracted = incoming.extract_trace_from_headers().unwrap().clone();
        assert_eq!(extracted.span_id, SPAN_ID);
        assert_eq!(incoming.trace(), Some(&extracted));
        assert_eq!(
            extracted.baggage,
            [("tenant".to_owned(), "acme".to_owned())]
        );

        // On the way out, a new span of the same trace.
        let mut outgoing = incoming.map(|order| order.len());
        let mut next = extracted.clone();
        next.span_id = [1, 2, 3, 4, 5, 6, 7, 8];
        outgoing.set_trace(next.clone());
        assert!(outgoing.inject_trace_into_headers());
        assert_eq!(
            outgoing.header("traceparent"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-0102030405060708-01")
        );
        assert_eq!(outgoing.trace_from_headers(), Some(next));
    }

    #[test]
    fn split_payload_keeps_the_rest_for_a_new_payload() {
        let ts = Instant::now();
        let mut env = Envelope::with_timestamp(String::from("7"), 3, ts);
        env.set_trace(TraceContext::new(TRACE_ID, SPAN_ID, true));
        let (text, rest) = env.split_payload();
        assert_eq!(text, "7");
        let back = rest.map(|()| 7u8);
        assert_eq!((back.seq(), back.timestamp()), (3, ts));
        assert_eq!(back.trace().unwrap().span_id, SPAN_ID);

        let (_, bare) = Envelope::new(1u8, 0).split_payload();
        assert!(!bare.has_metadata());
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
