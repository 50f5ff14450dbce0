//! The binary encoding of spilled state: the [`Spill`] trait and
//! [`SpillError`].
//!
//! When an accumulation with `spill` goes over its memory budget, the state
//! of its coldest keys is encoded with [`Spill::encode`], written to disk by
//! a [`SpillStore`](super::spill::SpillStore) and decoded again with
//! [`Spill::decode`] when the key comes back.
//!
//! # Encoding
//!
//! The encoding is compact, deterministic (equal values encode to equal
//! bytes) and has no self-description: the reader must know the type.
//!
//! | type | bytes |
//! | --- | --- |
//! | `u8` ..= `u128`, `i8` ..= `i128` | fixed width, little-endian |
//! | `usize`, `isize` | as `u64` / `i64` |
//! | `bool` | one byte, `0` or `1` |
//! | `char` | its scalar value as `u32` |
//! | `f32`, `f64` | their IEEE 754 bits as `u32` / `u64` (NaN payloads kept) |
//! | `()` | nothing |
//! | `String` | length in bytes as `u64`, then the UTF-8 bytes |
//! | `Vec<T>` | number of elements as `u64`, then each element |
//! | `Option<T>` | `0` for `None`; `1` then the value for `Some` |
//! | `Box<T>` | as `T` |
//! | tuples (up to 4) | the fields in order |
//! | `Duration` | whole seconds as `u64`, then nanoseconds as `u32` |
//! | [`Batch<T, K>`] | key, items (as `Vec<T>`), window start, window end, total bytes (`u64`); see below for the two instants |
//!
//! # Robustness
//!
//! Decoding never panics and never trusts a length prefix: a length is
//! checked against the bytes that are left *before* anything is allocated
//! (a `Vec<T>` of `n` elements needs at least `n * T::MIN_ENCODED_LEN`
//! bytes), so a corrupt length gives
//! [`SpillError::LengthOutOfBounds`] instead of a huge allocation or a long
//! loop. The one exception is a type whose elements encode to *no* bytes
//! (`()`, or a type that does not declare
//! [`MIN_ENCODED_LEN`](Spill::MIN_ENCODED_LEN)): at most
//! [`MAX_ZERO_SIZED_ELEMENTS`] elements in one `Vec` may decode without
//! consuming input, so even `Vec<()>` with a corrupt length stops quickly.
//! Memory reserved ahead of decoding is capped too; a vector grows only as
//! its elements actually decode.

use std::error::Error;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

use crate::batch::Batch;

/// How many elements of one `Vec` may decode without consuming any input.
///
/// This bounds the work a corrupt length prefix can cause for element types
/// that encode to nothing, such as `()`. A `Vec<()>` longer than this
/// encodes fine but fails to decode with
/// [`SpillError::LengthOutOfBounds`].
pub const MAX_ZERO_SIZED_ELEMENTS: u64 = 1 << 24;

/// Upper bound, in bytes of `T`, of the capacity reserved before a `Vec<T>`
/// is decoded; beyond it the vector grows as elements decode.
const PREALLOC_BYTES: usize = 64 * 1024;

/// A value that can be written to disk when an accumulation spills, and read
/// back.
///
/// `encode` appends the value's bytes to `out`; `decode` reads one value from
/// the front of `input` and advances `input` past it. The two must agree, and
/// `decode` must return an error, never panic, on bytes that `encode` did not
/// produce. Implementations for structs usually encode their fields in order:
///
/// ```
/// use pipeline_runtime::accumulate::codec::{Spill, SpillError};
///
/// struct Totals {
///     count: u64,
///     names: Vec<String>,
/// }
///
/// impl Spill for Totals {
///     const MIN_ENCODED_LEN: usize = u64::MIN_ENCODED_LEN + Vec::<String>::MIN_ENCODED_LEN;
///
///     fn encode(&self, out: &mut Vec<u8>) {
///         self.count.encode(out);
///         self.names.encode(out);
///     }
///
///     fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
///         Ok(Totals { count: u64::decode(input)?, names: Vec::decode(input)? })
///     }
/// }
///
/// let bytes = pipeline_runtime::accumulate::codec::to_bytes(&Totals {
///     count: 2,
///     names: vec!["a".into(), "b".into()],
/// });
/// let back: Totals = pipeline_runtime::accumulate::codec::from_bytes(&bytes).unwrap();
/// assert_eq!(back.count, 2);
/// assert_eq!(back.names, ["a", "b"]);
/// ```
///
/// The [module documentation](self) lists the encoding of the built-in
/// implementations.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be spilled to disk",
    note = "implement `pipeline::accumulate::Spill` for it, or remove `spill` from the accumulate"
)]
pub trait Spill: Sized {
    /// A lower bound on the number of bytes any value of this type encodes
    /// to.
    ///
    /// Decoding a `Vec<Self>` uses it to reject a length prefix that cannot
    /// fit in the remaining input before allocating. The default, `0`, is
    /// always correct; a larger true bound makes corrupt input fail faster.
    /// A value larger than the real minimum makes valid input fail to
    /// decode.
    const MIN_ENCODED_LEN: usize = 0;

    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// Decodes one value from the front of `input` and advances `input` past
    /// the bytes it used.
    ///
    /// # Errors
    ///
    /// [`SpillError::Truncated`] if `input` ends too early,
    /// [`SpillError::LengthOutOfBounds`] for an impossible length prefix and
    /// [`SpillError::InvalidData`] for bytes no value encodes to (a `bool`
    /// that is neither 0 nor 1, invalid UTF-8, ...).
    fn decode(input: &mut &[u8]) -> Result<Self, SpillError>;
}

/// Encodes `value` into a new buffer.
pub fn to_bytes<T: Spill>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(T::MIN_ENCODED_LEN);
    value.encode(&mut out);
    out
}

/// Decodes a `T` that must use all of `bytes`.
///
/// # Errors
///
/// Whatever [`Spill::decode`] returns, and [`SpillError::InvalidData`] if
/// bytes are left over after the value.
pub fn from_bytes<T: Spill>(mut bytes: &[u8]) -> Result<T, SpillError> {
    let value = T::decode(&mut bytes)?;
    if bytes.is_empty() {
        Ok(value)
    } else {
        Err(SpillError::InvalidData {
            what: std::any::type_name::<T>(),
            detail: format!("{} unexpected bytes after the value", bytes.len()),
        })
    }
}

/// Where a spilled record lives on disk; part of the errors about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordLocation {
    /// The record id given to [`SpillStore::put`](super::spill::SpillStore::put).
    pub id: u64,
    /// The spill file holding it.
    pub path: PathBuf,
    /// Byte offset of the record's header in that file.
    pub offset: u64,
}

impl fmt::Display for RecordLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spill record {} (`{}`, offset {})",
            self.id,
            self.path.display(),
            self.offset
        )
    }
}

/// Why spilling state to disk, or reading it back, failed.
///
/// All variants except [`Io`](Self::Io) and [`Missing`](Self::Missing) mean
/// the data read back is corrupt; [`is_corruption`](Self::is_corruption)
/// tells them apart. None of them is retried by the spill store: the caller
/// reports the error and moves on.
#[derive(Debug)]
#[non_exhaustive]
pub enum SpillError {
    /// An operating-system I/O call failed: a full disk, a missing or
    /// read-only spill directory, a path that is a file, ...
    Io {
        /// What was being done, e.g. `"create spill directory"`.
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The error the operating system gave.
        source: io::Error,
    },
    /// A record header has the wrong magic bytes, an unsupported format
    /// version, or names another record or length than the index expects.
    BadHeader {
        /// The record.
        at: RecordLocation,
        /// What is wrong with the header.
        reason: String,
    },
    /// A record's header or payload does not match its CRC-32.
    Checksum {
        /// The record.
        at: RecordLocation,
        /// `"header"` or `"payload"`.
        part: &'static str,
        /// The checksum stored in the file.
        stored: u32,
        /// The checksum of the bytes actually read.
        computed: u32,
    },
    /// The data ends before the record or value does.
    Truncated {
        /// The record, when reading a spill file; `None` when decoding a
        /// value from a buffer.
        at: Option<RecordLocation>,
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// A length prefix is larger than the data could possibly hold.
    LengthOutOfBounds {
        /// The type whose length it is.
        what: &'static str,
        /// The length read.
        len: u64,
        /// The largest length that was possible there.
        max: u64,
    },
    /// Bytes that no value of the type encodes to.
    InvalidData {
        /// The type being decoded.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// No record with this id is in the spill store.
    Missing {
        /// The id asked for.
        id: u64,
    },
}

impl SpillError {
    /// Whether the error means the spilled data was corrupt (rather than an
    /// I/O failure or an unknown id).
    pub fn is_corruption(&self) -> bool {
        !matches!(self, SpillError::Io { .. } | SpillError::Missing { .. })
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        SpillError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

impl fmt::Display for SpillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpillError::Io { op, path, source } => {
                write!(
                    f,
                    "spill I/O error: cannot {op} `{}`: {source}",
                    path.display()
                )
            }
            SpillError::BadHeader { at, reason } => {
                write!(f, "{at} has a bad header: {reason}")
            }
            SpillError::Checksum {
                at,
                part,
                stored,
                computed,
            } => write!(
                f,
                "{at} is corrupt: {part} checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            SpillError::Truncated {
                at: Some(at),
                needed,
                available,
            } => write!(
                f,
                "{at} is truncated: it needs {needed} bytes but the file has only {available} from there"
            ),
            SpillError::Truncated {
                at: None,
                needed,
                available,
            } => write!(
                f,
                "spilled data is truncated: {needed} more bytes needed, {available} left"
            ),
            SpillError::LengthOutOfBounds { what, len, max } => write!(
                f,
                "spilled data is corrupt: length {len} of a `{what}` is out of bounds (at most {max} possible here)"
            ),
            SpillError::InvalidData { what, detail } => {
                write!(f, "spilled data is corrupt: invalid `{what}`: {detail}")
            }
            SpillError::Missing { id } => write!(f, "spill record {id} is not in the spill store"),
        }
    }
}

impl Error for SpillError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            SpillError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Takes the first `N` bytes of `input`.
fn take_array<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], SpillError> {
    match input.split_first_chunk::<N>() {
        Some((head, rest)) => {
            *input = rest;
            Ok(*head)
        }
        None => Err(truncated(N, input.len())),
    }
}

/// Takes the first `n` bytes of `input`.
fn take_slice<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], SpillError> {
    match input.split_at_checked(n) {
        Some((head, rest)) => {
            *input = rest;
            Ok(head)
        }
        None => Err(truncated(n, input.len())),
    }
}

fn truncated(needed: usize, available: usize) -> SpillError {
    SpillError::Truncated {
        at: None,
        needed: needed as u64,
        available: available as u64,
    }
}

fn invalid(what: &'static str, detail: impl Into<String>) -> SpillError {
    SpillError::InvalidData {
        what,
        detail: detail.into(),
    }
}

/// Reads a length prefix and checks that `len` items of at least `min_len`
/// bytes each can fit in what is left of `input`.
fn decode_len(input: &mut &[u8], min_len: usize, what: &'static str) -> Result<usize, SpillError> {
    let len = u64::decode(input)?;
    let remaining = input.len() as u64;
    let max = match min_len {
        0 => remaining.saturating_add(MAX_ZERO_SIZED_ELEMENTS),
        n => remaining / n as u64,
    };
    if len > max {
        return Err(SpillError::LengthOutOfBounds { what, len, max });
    }
    usize::try_from(len).map_err(|_| SpillError::LengthOutOfBounds {
        what,
        len,
        max: usize::MAX as u64,
    })
}

macro_rules! spill_fixed_int {
    ($($t:ty),* $(,)?) => {$(
        impl Spill for $t {
            const MIN_ENCODED_LEN: usize = size_of::<$t>();

            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }

            fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
                Ok(<$t>::from_le_bytes(take_array(input)?))
            }
        }
    )*};
}

spill_fixed_int!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128);

impl Spill for usize {
    const MIN_ENCODED_LEN: usize = 8;

    fn encode(&self, out: &mut Vec<u8>) {
        (*self as u64).encode(out);
    }

    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        let value = u64::decode(input)?;
        usize::try_from(value)
            .map_err(|_| invalid("usize", format!("{value} does not fit in a usize here")))
    }
}

impl Spill for isize {
    const MIN_ENCODED_LEN: usize = 8;

    fn encode(&self, out: &mut Vec<u8>) {
        (*self as i64).encode(out);
    }

    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        let value = i64::decode(input)?;
        isize::try_from(value)
            .map_err(|_| invalid("isize", format!("{value} does not fit in an isize here")))
    }
}

impl Spill for bool {
    const MIN_ENCODED_LEN: usize = 1;

    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }

    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        match u8::decode(input)? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(invalid("bool", format!("byte {b:#04x} is neither 0 nor 1"))),
        }
    }
}

impl Spill for char {
    const MIN_ENCODED_LEN: usize = 4;

    fn encode(&self, out: &mut Vec<u8>) {
        u32::from(*self).encode(out);
    }

    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        let value = u32::decode(input)?;
        char::from_u32(value)
            .ok_or_else(|| invalid("char", format!("{value:#x} is not a Unicode scalar value")))
    }
}

impl Spill for f32 {
    const MIN_ENCODED_LEN: usize = 4;

    fn encode(&self, out: &mut Vec<u8>) {
        self.to_bits().encode(out);
    }

    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        u32::decode(input).map(f32::from_bits)
    }
}

impl Spill for f64 {
    const MIN_ENCODED_LEN: usize = 8;

    fn encode(&self, out: &mut Vec<u8>) {
        self.to_bits().encode(out);
    }

    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        u64::decode(input).map(f64::from_bits)
    }
}

impl Spill for () {
    fn encode(&self, _out: &mut Vec<u8>) {}

    fn decode(_input: &mut &[u8]) -> Result<Self, SpillError> {
        Ok(())
    }
}

impl Spill for String {
    const MIN_ENCODED_LEN: usize = 8;

    fn encode(&self, out: &mut Vec<u8>) {
        (self.len() as u64).encode(out);
        out.extend_from_slice(self.as_bytes());
    }

    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        let len = decode_len(input, 1, "String")?;
        let bytes = take_slice(input, len)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(invalid("String", e.to_string())),
        }
    }
}

impl<T: Spill> Spill for Vec<T> {
    const MIN_ENCODED_LEN: usize = 8;

    fn encode(&self, out: &mut Vec<u8>) {
        (self.len() as u64).encode(out);
        for item in self {
            item.encode(out);
        }
    }

    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        let len = decode_len(input, T::MIN_ENCODED_LEN, "Vec")?;
        let mut items = Vec::with_capacity(len.min(PREALLOC_BYTES / size_of::<T>().max(1)));
        let mut zero_sized = 0u64;
        for _ in 0..len {
            let before = input.len();
            items.push(T::decode(input)?);
            if input.len() == before {
                zero_sized += 1;
                if zero_sized > MAX_ZERO_SIZED_ELEMENTS {
                    return Err(SpillError::LengthOutOfBounds {
                        what: "Vec",
                        len: len as u64,
                        max: MAX_ZERO_SIZED_ELEMENTS,
                    });
                }
            }
        }
        Ok(items)
    }
}

impl<T: Spill> Spill for Option<T> {
    const MIN_ENCODED_LEN: usize = 1;

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(value) => {
                out.push(1);
                value.encode(out);
            }
        }
    }

    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        match u8::decode(input)? {
            0 => Ok(None),
            1 => T::decode(input).map(Some),
            tag => Err(invalid(
                "Option",
                format!("tag {tag:#04x} is neither 0 nor 1"),
            )),
        }
    }
}

impl<T: Spill> Spill for Box<T> {
    const MIN_ENCODED_LEN: usize = T::MIN_ENCODED_LEN;

    fn encode(&self, out: &mut Vec<u8>) {
        (**self).encode(out);
    }

    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        T::decode(input).map(Box::new)
    }
}

macro_rules! spill_tuple {
    ($($name:ident),+) => {
        impl<$($name: Spill),+> Spill for ($($name,)+) {
            const MIN_ENCODED_LEN: usize = 0 $(+ $name::MIN_ENCODED_LEN)+;

            #[allow(non_snake_case)]
            fn encode(&self, out: &mut Vec<u8>) {
                let ($($name,)+) = self;
                $($name.encode(out);)+
            }

            fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
                Ok(($($name::decode(input)?,)+))
            }
        }
    };
}

spill_tuple!(A);
spill_tuple!(A, B);
spill_tuple!(A, B, C);
spill_tuple!(A, B, C, D);

impl Spill for Duration {
    const MIN_ENCODED_LEN: usize = 12;

    fn encode(&self, out: &mut Vec<u8>) {
        self.as_secs().encode(out);
        self.subsec_nanos().encode(out);
    }

    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        let secs = u64::decode(input)?;
        let nanos = u32::decode(input)?;
        if nanos >= 1_000_000_000 {
            return Err(invalid(
                "Duration",
                format!("{nanos} nanoseconds is not below one second"),
            ));
        }
        Ok(Duration::new(secs, nanos))
    }
}

/// The instant that spilled [`Batch`] windows are measured from: the first
/// time a batch was spilled in this process.
fn instant_base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Encoded size of one instant: a direction byte and a `Duration`.
const INSTANT_LEN: usize = 1 + 12;

fn encode_instant(instant: Instant, out: &mut Vec<u8>) {
    let base = instant_base();
    match instant.checked_duration_since(base) {
        Some(after) => {
            out.push(0);
            after.encode(out);
        }
        None => {
            out.push(1);
            base.saturating_duration_since(instant).encode(out);
        }
    }
}

fn decode_instant(input: &mut &[u8]) -> Result<Instant, SpillError> {
    let direction = u8::decode(input)?;
    let offset = Duration::decode(input)?;
    let base = instant_base();
    let instant = match direction {
        0 => base.checked_add(offset),
        1 => base.checked_sub(offset),
        other => {
            return Err(invalid(
                "Instant",
                format!("direction byte {other:#04x} is neither 0 nor 1"),
            ));
        }
    };
    instant.ok_or_else(|| invalid("Instant", format!("offset {offset:?} is out of range")))
}

/// A batch is encoded as its key, its items (as a `Vec<T>`), the start and
/// end of its window, and its total byte size (`u64`).
///
/// `tokio::time::Instant` has no fixed epoch, so each window bound is
/// encoded as its signed offset from a base instant taken once per process
/// (the first time any batch is spilled): a direction byte (`0`: at or after
/// the base, `1`: before it) and a [`Duration`]. Because spill files never
/// outlive the process that wrote them, this restores both bounds exactly,
/// including under paused `tokio` time, and keeps the time the batch spent
/// on disk counted in its age (unlike storing only the window length and
/// re-anchoring it at `Instant::now()` on decode). Decoding bytes written
/// by another process gives valid but meaningless instants.
impl<T: Spill, K: Spill> Spill for Batch<T, K> {
    const MIN_ENCODED_LEN: usize = K::MIN_ENCODED_LEN + 8 + 2 * INSTANT_LEN + 8;

    fn encode(&self, out: &mut Vec<u8>) {
        self.key().encode(out);
        (self.len() as u64).encode(out);
        for item in self.items() {
            item.encode(out);
        }
        encode_instant(self.window_start(), out);
        encode_instant(self.window_end(), out);
        self.total_bytes().encode(out);
    }

    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        let key = K::decode(input)?;
        let items = Vec::<T>::decode(input)?;
        let window_start = decode_instant(input)?;
        let window_end = decode_instant(input)?;
        let total_bytes = u64::decode(input)?;
        Ok(Batch::new(
            key,
            items,
            window_start,
            window_end,
            total_bytes,
        ))
    }
}

#[cfg(test)]
mod tests;
