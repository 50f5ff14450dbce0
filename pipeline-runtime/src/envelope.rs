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

/// A W3C Trace Context (`traceparent`) plus baggage entries.
///
/// `span_id` is the id of the span the context stands for: the caller's
/// span for a context read from headers, the parent of whatever span works
/// on the item next. [`child`](Self::child) (or [`advance`](Self::advance))
/// makes the context of such a next span.
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

    /// The context of a child span: the same trace id, flags and baggage,
    /// and a new span id (see [`advance`](Self::advance)), whose parent is
    /// this context's span.
    ///
    /// ```
    /// use pipeline_runtime::envelope::TraceContext;
    ///
    /// let parent = TraceContext::from_traceparent(
    ///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    /// )
    /// .unwrap();
    /// let child = parent.child();
    /// assert_eq!(child.trace_id, parent.trace_id);
    /// assert_eq!(child.sampled, parent.sampled);
    /// assert_ne!(child.span_id, parent.span_id);
    /// assert_ne!(child.span_id, [0; 8]);
    /// // A new hop of the same trace, as the next service will read it.
    /// let text = child.to_traceparent();
    /// assert!(text.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    /// assert!(text.ends_with("-01"));
    /// ```
    #[must_use]
    pub fn child(&self) -> TraceContext {
        let mut child = self.clone();
        child.advance();
        child
    }

    /// Turns the context into that of a child span in place (what
    /// [`child`](Self::child) does without copying the baggage): keeps the
    /// trace id, flags and baggage, gives it a new span id, and returns
    /// the previous span id, the new span's parent.
    ///
    /// New span ids are unique, not random in the cryptographic sense: a
    /// per-process counter mixed with a per-process seed (from the
    /// standard library's randomly keyed hasher, the process id and the
    /// clock) through a bijective 64-bit mix, so no two ids this process
    /// makes are equal (before 2<sup>64</sup> of them), an id is never all
    /// zeros nor equal to the one it replaces, and ids of different
    /// processes collide no more often than random 64-bit ids. Do not use
    /// them where an id must not be guessable.
    pub fn advance(&mut self) -> [u8; 8] {
        let parent = self.span_id;
        self.span_id = new_span_id(parent);
        parent
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
    ///
    /// Leading and trailing spaces and tabs (which HTTP allows around a
    /// header value) are not accepted here; [`from_headers`](Self::from_headers)
    /// trims them.
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

    /// Parses a W3C `baggage` header value: comma-separated `key=value`
    /// members, each possibly followed by `;`-separated properties (which
    /// are dropped). Spaces and tabs around keys and values are trimmed,
    /// values are percent-decoded, and members without a `=` or with an
    /// empty key are skipped. Never fails.
    pub fn parse_baggage(value: &str) -> Vec<(String, String)> {
        value
            .split(',')
            .filter_map(|member| {
                let member = member.split(';').next().unwrap_or_default();
                let (key, value) = member.split_once('=')?;
                let key = key.trim_matches([' ', '\t']);
                if key.is_empty() {
                    return None;
                }
                Some((
                    key.to_owned(),
                    percent_decode(value.trim_matches([' ', '\t'])),
                ))
            })
            .collect()
    }

    /// The baggage as a W3C `baggage` header value: `key=value` members
    /// joined by `,`, with each value percent-encoded where the format
    /// requires it (anything but printable ASCII other than space, `"`,
    /// `,`, `;`, `\` and `%`). Keys are written as they are.
    pub fn baggage_header(&self) -> String {
        let mut out = String::new();
        for (i, (key, value)) in self.baggage.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(key);
            out.push('=');
            percent_encode(value, &mut out);
        }
        out
    }
}

/// A span id that is neither all zeros nor `parent`, unique within the
/// process (see [`TraceContext::advance`]).
fn new_span_id(parent: [u8; 8]) -> [u8; 8] {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// An odd constant (2^64 over the golden ratio): multiplying by it is a
    /// bijection of `u64`, which spreads consecutive counts.
    const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static SEED: OnceLock<u64> = OnceLock::new();

    let seed = *SEED.get_or_init(process_seed);
    loop {
        let count = NEXT.fetch_add(1, Ordering::Relaxed);
        // Each step is a bijection of `u64`, so distinct counts give
        // distinct ids.
        let mut z = seed.wrapping_add(count.wrapping_mul(GAMMA));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let id = (z ^ (z >> 31)).to_be_bytes();
        if id != [0; 8] && id != parent {
            return id;
        }
    }
}

/// A seed that differs between processes: the standard library's randomly
/// keyed hasher over the process id and the clock.
fn process_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};

    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    hasher.finish()
}

/// The header carrying a W3C trace context: `traceparent`.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// The header carrying W3C baggage: `baggage`.
pub const BAGGAGE_HEADER: &str = "baggage";

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

/// Whether `byte` may stand for itself in a baggage value.
fn is_baggage_octet(byte: u8) -> bool {
    matches!(byte, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e) && byte != b'%'
}

fn percent_encode(value: &str, out: &mut String) {
    for &byte in value.as_bytes() {
        if is_baggage_octet(byte) {
            out.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
    }
}

/// Decodes `%XX` escapes (either case); a `%` not followed by two hex
/// digits stands for itself, and bytes that do not form UTF-8 are
/// replaced.
fn percent_decode(value: &str) -> String {
    if !value.contains('%') {
        return value.to_owned();
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|pair| {
                let digit = |d: u8| char::from(d).to_digit(16);
                Some((digit(pair[0])? << 4 | digit(pair[1])?) as u8)
            });
        match decoded {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
    fn child_is_a_new_span_of_the_same_trace() {
        let mut parent = TraceContext::new(TRACE_ID, SPAN_ID, false);
        parent.baggage = vec![("tenant".to_owned(), "acme".to_owned())];
        let child = parent.child();
        assert_eq!(child.trace_id, TRACE_ID);
        assert!(!child.sampled, "flags are kept");
        assert_eq!(child.baggage, parent.baggage);
        assert_ne!(child.span_id, SPAN_ID);
        assert_ne!(child.span_id, [0; 8]);
        // It parses back: a valid `traceparent`.
        let text = child.to_traceparent();
        assert_eq!(
            TraceContext::from_traceparent(&text).unwrap().span_id,
            child.span_id
        );

        let mut advanced = parent.clone();
        assert_eq!(advanced.advance(), SPAN_ID, "returns the parent");
        let first = advanced.span_id;
        assert_eq!(advanced.advance(), first);
        assert_ne!(advanced.span_id, first);
        assert_eq!(advanced.baggage, parent.baggage);
    }

    #[test]
    fn new_span_ids_are_unique_across_threads() {
        let ids: Vec<[u8; 8]> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        let parent = TraceContext::new(TRACE_ID, SPAN_ID, true);
                        (0..5_000)
                            .map(|_| parent.child().span_id)
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|worker| worker.join().unwrap())
                .collect()
        });
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        assert!(!distinct.contains(&[0; 8]) && !distinct.contains(&SPAN_ID));
        // Consecutive ids do not look consecutive.
        let first = u64::from_be_bytes(ids[0]);
        let second = u64::from_be_bytes(ids[1]);
        assert!(first.abs_diff(second) > 1 << 20);
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
