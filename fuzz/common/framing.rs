//! The framing decoders of `pipeline-runtime` (`io::frames`, `io::lines`)
//! against a model, on bytes that arrive split at arbitrary points.
//!
//! Shared by the `framing` fuzz target (`fuzz/fuzz_targets/framing.rs`) and
//! its proptest twin that runs in CI
//! (`pipeline-runtime/tests/io_framing_props.rs`), which includes this file
//! with `#[path]`. It uses only `pipeline_runtime`, `tokio`'s `AsyncRead`
//! and `std`, so both can build it.
//!
//! For every input the source must:
//!
//! - not panic, and end (every `fill` returns; `Done` comes within a bound
//!   of calls);
//! - yield exactly the model's items: the frames cut left to right at each
//!   delimiter, without their delimiters, the tail after the last delimiter
//!   as a last frame (none if the input ends with a delimiter), each frame
//!   of more than `max` bytes as one `TooLong` error with its number and
//!   offset; for `lines`, a `\r` before the `\n` removed and a line that is
//!   not UTF-8 an `InvalidUtf8` error with its bytes;
//! - never yield a frame of more than `max` bytes;
//! - reproduce the input minus its overlong frames: the frames, each
//!   followed by its delimiter (the last one only if the input had it), are
//!   the input with every overlong frame and its delimiter left out;
//! - on a read error, yield the items of the frames complete before it
//!   (and maybe a `TooLong` for an overlong unfinished one), then the
//!   error, then end.

#![allow(dead_code)]

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use pipeline_runtime::io::{Bytes, FrameError, LineError, frames, lines};
use pipeline_runtime::stage::{Pull, Source, StageContext};
use tokio::io::{AsyncRead, ReadBuf};

/// One input: what to decode, how it arrives, and how it is read.
#[derive(Clone)]
pub struct FramingCase {
    /// `lines` (delimiter `\n`) rather than `frames`.
    pub lines: bool,
    /// The delimiter of `frames` (at least one byte; ignored for `lines`).
    pub delimiter: Vec<u8>,
    /// `max_frame` of `frames`, `max_line` of `lines`.
    pub max: usize,
    /// The input.
    pub data: Vec<u8>,
    /// The sizes of successive reads, cycled (each at least 1).
    pub cuts: Vec<usize>,
    /// Whether a read first answers `Pending` (and wakes at once), cycled.
    pub pending: Vec<bool>,
    /// The read fails once this many bytes have been read.
    pub fail_at: Option<usize>,
    /// The most items one `fill` may add.
    pub chunk: usize,
}

impl fmt::Debug for FramingCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FramingCase")
            .field("lines", &self.lines)
            .field("delimiter", &Bytes::copy_from_slice(&self.delimiter))
            .field("max", &self.max)
            .field("data", &Bytes::copy_from_slice(&self.data))
            .field("cuts", &self.cuts)
            .field("pending", &self.pending)
            .field("fail_at", &self.fail_at)
            .field("chunk", &self.chunk)
            .finish()
    }
}

/// What the source yields, reduced to what the model can predict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    Frame(Vec<u8>),
    /// Too long: the frame's (line's) number, and its offset (`frames`
    /// only; 0 for `lines`).
    TooLong {
        number: u64,
        offset: u64,
    },
    /// Not UTF-8 (`lines` only): the line's number and bytes.
    InvalidUtf8 {
        number: u64,
        bytes: Vec<u8>,
    },
    /// The read failed.
    Io,
}

/// An `AsyncRead` that serves `data` in reads of the case's sizes, now and
/// then answering `Pending` first, and failing at `fail_at`.
struct Chopped<'a> {
    case: &'a FramingCase,
    at: usize,
    reads: usize,
    /// The current read already answered `Pending`.
    waited: bool,
    failed: bool,
}

impl AsyncRead for Chopped<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let case = this.case;
        let i = this.reads;
        if !this.waited && !case.pending.is_empty() && case.pending[i % case.pending.len()] {
            this.waited = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        this.waited = false;
        this.reads += 1;
        let fail_at = case.fail_at.filter(|&f| f <= case.data.len());
        let end = fail_at.unwrap_or(case.data.len());
        if this.at >= end && fail_at.is_some() && !this.failed {
            this.failed = true;
            return Poll::Ready(Err(io::Error::other("chaos: injected read error")));
        }
        let cut = case
            .cuts
            .get(i % case.cuts.len().max(1))
            .copied()
            .unwrap_or(usize::MAX);
        let n = cut.max(1).min(end - this.at).min(buf.remaining());
        buf.put_slice(&case.data[this.at..this.at + n]);
        this.at += n;
        Poll::Ready(Ok(()))
    }
}

/// Polls `future` to the end with a waker that does nothing: every
/// `Pending` here comes from `Chopped`, which is ready at the next poll.
/// Panics if it takes more than `bound` polls (a hang).
fn block_on<F: Future>(future: F, bound: usize) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..bound {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("a fill did not end within {bound} polls");
}

/// Reads everything from the case's source, `fill` by `fill`.
pub fn run(case: &FramingCase) -> Vec<Got> {
    let reader = Chopped {
        case,
        at: 0,
        reads: 0,
        waited: false,
        failed: false,
    };
    let ctx = StageContext::detached("framing");
    let chunk = case.chunk.max(1);
    // Every call makes progress: at least a byte read, or an item.
    let calls = 4 * (case.data.len() + 2);
    let polls = 8 * (case.data.len() + 2);
    let mut got = Vec::new();
    if case.lines {
        let mut source = lines(reader).max_line(case.max);
        let mut out: Vec<String> = Vec::new();
        for _ in 0..calls {
            let pulled = block_on(source.fill(&mut out, chunk, &ctx), polls);
            assert!(
                out.len() <= chunk,
                "a fill added {} items, max {chunk}",
                out.len()
            );
            got.extend(out.drain(..).map(|line| Got::Frame(line.into_bytes())));
            match pulled {
                Ok(Pull::More) => {}
                Ok(Pull::Done) => return got,
                Err(LineError::TooLong { line, max }) => {
                    assert_eq!(max, case.max, "the limit as the user set it");
                    got.push(Got::TooLong {
                        number: line,
                        offset: 0,
                    });
                }
                Err(LineError::InvalidUtf8 { line, bytes, .. }) => got.push(Got::InvalidUtf8 {
                    number: line,
                    bytes: bytes.to_vec(),
                }),
                Err(LineError::Io(_)) => got.push(Got::Io),
                Err(other) => panic!("an unexpected error: {other}"),
            }
        }
    } else {
        let mut source = frames(reader, &case.delimiter, case.max);
        let mut out: Vec<Bytes> = Vec::new();
        for _ in 0..calls {
            let pulled = block_on(source.fill(&mut out, chunk, &ctx), polls);
            assert!(
                out.len() <= chunk,
                "a fill added {} items, max {chunk}",
                out.len()
            );
            got.extend(out.drain(..).map(|frame| Got::Frame(frame.to_vec())));
            match pulled {
                Ok(Pull::More) => {}
                Ok(Pull::Done) => return got,
                Err(FrameError::TooLong { frame, offset, max }) => {
                    assert_eq!(max, case.max);
                    got.push(Got::TooLong {
                        number: frame,
                        offset,
                    });
                }
                Err(FrameError::Io(_)) => got.push(Got::Io),
                Err(other) => panic!("an unexpected error: {other}"),
            }
        }
    }
    panic!("the source did not end within {calls} fills; so far {got:?}");
}

/// One frame of the model: where it starts, its bytes, and whether a
/// delimiter ended it.
struct Cut<'a> {
    offset: usize,
    bytes: &'a [u8],
    delimited: bool,
}

/// The input cut left to right at each delimiter; the tail is a last frame
/// unless it is empty.
fn cut<'a>(data: &'a [u8], delimiter: &[u8]) -> Vec<Cut<'a>> {
    let mut cuts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + delimiter.len() <= data.len() {
        if &data[i..i + delimiter.len()] == delimiter {
            cuts.push(Cut {
                offset: start,
                bytes: &data[start..i],
                delimited: true,
            });
            i += delimiter.len();
            start = i;
        } else {
            i += 1;
        }
    }
    if start < data.len() {
        cuts.push(Cut {
            offset: start,
            bytes: &data[start..],
            delimited: false,
        });
    }
    cuts
}

/// What the source must yield for `data` (all of the input, no error).
fn model_of(case: &FramingCase, data: &[u8]) -> Vec<Got> {
    let delimiter: &[u8] = if case.lines { b"\n" } else { &case.delimiter };
    cut(data, delimiter)
        .iter()
        .enumerate()
        .map(|(i, cut)| {
            let number = i as u64 + 1;
            if case.lines {
                let text = cut.bytes.strip_suffix(b"\r").unwrap_or(cut.bytes);
                if text.len() > case.max {
                    Got::TooLong { number, offset: 0 }
                } else if std::str::from_utf8(text).is_err() {
                    Got::InvalidUtf8 {
                        number,
                        bytes: text.to_vec(),
                    }
                } else {
                    Got::Frame(text.to_vec())
                }
            } else if cut.bytes.len() > case.max {
                Got::TooLong {
                    number,
                    offset: cut.offset as u64,
                }
            } else {
                Got::Frame(cut.bytes.to_vec())
            }
        })
        .collect()
}

/// Checks one case: `Err` says what went wrong.
pub fn check(case: &FramingCase) -> Result<(), String> {
    if !case.lines && case.delimiter.is_empty() {
        return Ok(());
    }
    let got = run(case);
    let fail = |what: String| Err(format!("{what}\n  case: {case:?}\n  got:  {got:?}"));
    if let Some(long) = got.iter().find_map(|g| match g {
        Got::Frame(f) if f.len() > case.max => Some(f.len()),
        _ => None,
    }) {
        return fail(format!("a frame of {long} bytes, max {}", case.max));
    }
    match case.fail_at.filter(|&f| f <= case.data.len()) {
        None => {
            let model = model_of(case, &case.data);
            if got != model {
                return fail(format!("the model says {model:?}"));
            }
            if !case.lines {
                reproduces(case, &got).or_else(&fail)?;
            }
        }
        Some(at) => {
            // The frames complete before the error, then maybe the
            // unfinished one as too long, then the error.
            let delimiter: &[u8] = if case.lines { b"\n" } else { &case.delimiter };
            let read = &case.data[..at];
            let complete = cut(read, delimiter)
                .iter()
                .take_while(|c| c.delimited)
                .map(|c| c.offset + c.bytes.len() + delimiter.len())
                .last()
                .unwrap_or(0);
            let mut model = model_of(case, &read[..complete]);
            let before = model.len();
            let ok = |model: &[Got]| {
                got.len() == model.len() + 1
                    && got[..model.len()] == *model
                    && got[model.len()] == Got::Io
            };
            if ok(&model) {
                return Ok(());
            }
            // The unfinished frame, found too long before the error came.
            let tail = &read[complete..];
            model.push(Got::TooLong {
                number: before as u64 + 1,
                offset: if case.lines { 0 } else { complete as u64 },
            });
            // `lines` cuts at `\n` with one byte more for a `\r`.
            let limit = if case.lines {
                case.max.saturating_add(1)
            } else {
                case.max
            };
            if tail.len() > limit && ok(&model) {
                return Ok(());
            }
            model.truncate(before);
            return fail(format!(
                "after a read error at byte {at}, the model says {model:?} then the error"
            ));
        }
    }
    Ok(())
}

/// The frames, each followed by the delimiter (the last only if the input
/// ends with it), are the input with every overlong frame and its
/// delimiter left out.
fn reproduces(case: &FramingCase, got: &[Got]) -> Result<(), String> {
    let cuts = cut(&case.data, &case.delimiter);
    let mut expected = Vec::new();
    for c in &cuts {
        if c.bytes.len() <= case.max {
            expected.extend_from_slice(c.bytes);
            if c.delimited {
                expected.extend_from_slice(&case.delimiter);
            }
        }
    }
    let mut actual = Vec::new();
    let frames: Vec<&Vec<u8>> = got
        .iter()
        .filter_map(|g| match g {
            Got::Frame(f) => Some(f),
            _ => None,
        })
        .collect();
    let last_kept = cuts.iter().rposition(|c| c.bytes.len() <= case.max);
    for (i, frame) in frames.iter().enumerate() {
        actual.extend_from_slice(frame);
        let is_last = i + 1 == frames.len();
        // The last frame kept had a delimiter unless it was the input's
        // undelimited tail.
        let delimited = !is_last || last_kept.is_some_and(|k| cuts[k].delimited);
        if delimited {
            actual.extend_from_slice(&case.delimiter);
        }
    }
    if actual == expected {
        Ok(())
    } else {
        Err(format!(
            "frames and delimiters make {:?}, the input without its overlong frames is {:?}",
            Bytes::from(actual),
            Bytes::from(expected)
        ))
    }
}
