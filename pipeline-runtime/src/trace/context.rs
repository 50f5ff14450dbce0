//! The W3C trace context an item carries: [`TraceContext`], its
//! `traceparent` and `baggage` values, formatted and parsed, and the new
//! span ids of its hops.
//!
//! A leaf: it knows no envelope and no stage. Reading a context from an
//! envelope's [`Headers`](crate::envelope::Headers) and writing it back
//! ([`TraceContext::from_headers`], [`TraceContext::inject_into`]) is
//! [`crate::envelope`]'s, beside the headers; following it through the
//! stages is [`crate::trace`]'s.

use std::fmt;
use std::fmt::Write as _;

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

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE_ID: [u8; 16] = [
        0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47,
        0x36,
    ];
    const SPAN_ID: [u8; 8] = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];
    const W3C_EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

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
}
