use std::fmt;
use std::io;
use std::str::Utf8Error;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::AsyncRead;

use super::frames::{Delimited, FrameError, FrameReader};
use crate::stage::{Pull, Source, StageContext};

/// The longest line [`lines`] accepts unless told otherwise
/// ([`Lines::max_line`]): 1 MiB.
pub const DEFAULT_MAX_LINE: usize = 1024 * 1024;

/// Why [`lines`] could not deliver a line.
///
/// A line that is too long or not UTF-8 is skipped and reading goes on at
/// the next line; a read error ends the source.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum LineError {
    /// The line had more than `max` bytes before its `\n`. Its bytes were
    /// dropped as they came in.
    TooLong {
        /// The line's number, from 1.
        line: u64,
        /// The limit it went over.
        max: usize,
    },
    /// The line is not valid UTF-8.
    InvalidUtf8 {
        /// The line's number, from 1.
        line: u64,
        /// The line's bytes, without its line ending.
        bytes: Bytes,
        /// Where the first invalid byte is.
        error: Utf8Error,
    },
    /// Reading failed; the source ends after reporting it.
    Io(Arc<io::Error>),
}

impl LineError {
    /// The number of the line that failed, from 1, unless reading failed.
    pub fn line(&self) -> Option<u64> {
        match self {
            LineError::TooLong { line, .. } | LineError::InvalidUtf8 { line, .. } => Some(*line),
            LineError::Io(_) => None,
        }
    }
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::TooLong { line, max } => {
                write!(f, "line {line} is longer than {max} bytes; skipped")
            }
            LineError::InvalidUtf8 { line, error, .. } => {
                write!(f, "line {line} is not valid UTF-8 ({error}); skipped")
            }
            LineError::Io(error) => write!(f, "read failed: {error}"),
        }
    }
}

impl std::error::Error for LineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LineError::InvalidUtf8 { error, .. } => Some(error),
            LineError::Io(error) => Some(&**error),
            LineError::TooLong { .. } => None,
        }
    }
}

impl From<FrameError> for LineError {
    fn from(error: FrameError) -> Self {
        match error {
            FrameError::TooLong { frame, max, .. } => LineError::TooLong { line: frame, max },
            FrameError::Io(error) => LineError::Io(error),
        }
    }
}

/// A source of the lines of an `AsyncRead`. See [`lines`].
pub struct Lines<R> {
    reader: FrameReader<R>,
    /// The longest line, not counting its ending.
    max: usize,
}

/// A source that yields the lines of `reader` as `String`s, without their
/// line endings.
///
/// Lines end at `\n`, and a `\r` before it is removed too, so `\n` and
/// `\r\n` files read the same. An empty line is an empty string; the last
/// line is delivered even without a line ending, and an input that ends
/// with one has no empty line after it (as tokio-util's `LinesCodec`).
///
/// Bad input does not stop the source: a line that is not UTF-8
/// ([`LineError::InvalidUtf8`], which keeps its bytes) or longer than
/// [`DEFAULT_MAX_LINE`] bytes ([`LineError::TooLong`]; see
/// [`max_line`](Lines::max_line)) is reported and skipped, and reading
/// resumes at the next line. A source has no `errors` port, so these come
/// out as [`Source::fill`] errors: the runtime counts each as a failed item
/// of the source and logs it at `warn` with its line number. To route them
/// instead, wrap the source in [`results`](super::results), which yields
/// `Result<String, LineError>` items. A failed read is reported the same
/// way, and ends the source.
///
/// The input is read in large chunks into one buffer, which is reused; a
/// line too long is dropped as it arrives, so memory stays bounded.
///
/// ```
/// use pipeline_runtime::io::lines;
/// use pipeline_runtime::stage::{Pull, Source, StageContext};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let input: &[u8] = b"GET /\r\n\r\nPOST /orders";
/// let mut requests = lines(input);
/// let mut out = Vec::new();
/// let ctx = StageContext::detached("lines");
/// assert_eq!(requests.fill(&mut out, 16, &ctx).await.unwrap(), Pull::Done);
/// assert_eq!(out, ["GET /", "", "POST /orders"]);
/// # }
/// ```
///
/// In a pipeline, over a file:
///
/// ```no_run
/// # async fn open() -> std::io::Result<()> {
/// let log = tokio::fs::File::open("access.log").await?;
/// let requests = pipeline_runtime::io::lines(log).max_line(64 * 1024);
/// # let _ = requests;
/// # Ok(())
/// # }
/// ```
pub fn lines<R: AsyncRead>(reader: R) -> Lines<R> {
    Lines {
        reader: FrameReader::new(reader, Delimited::new(b"\n", DEFAULT_MAX_LINE + 1)),
        max: DEFAULT_MAX_LINE,
    }
}

impl<R: AsyncRead> Lines<R> {
    /// Sets the longest line accepted, in bytes, not counting its line
    /// ending. Longer lines fail with [`LineError::TooLong`].
    pub fn max_line(mut self, bytes: usize) -> Self {
        // One byte more for the `\r` of a `\r\n` ending, which is part
        // of the frame cut at `\n`.
        self.reader.decoder_mut().set_max(bytes.saturating_add(1));
        self.max = bytes;
        self
    }
}

impl<R: AsyncRead> Source for Lines<R> {
    type Out = String;
    type Error = LineError;

    async fn fill(
        &mut self,
        out: &mut Vec<String>,
        max: usize,
        _: &StageContext,
    ) -> Result<Pull, LineError> {
        let limit = self.max;
        self.reader
            .fill(
                out,
                max,
                |frame, line| {
                    let text = frame.strip_suffix(b"\r").unwrap_or(&frame);
                    if text.len() > limit {
                        return Err(LineError::TooLong { line, max: limit });
                    }
                    match std::str::from_utf8(text) {
                        Ok(text) => Ok(text.to_owned()),
                        Err(error) => Err(LineError::InvalidUtf8 {
                            line,
                            bytes: frame.slice_ref(text),
                            error,
                        }),
                    }
                },
                |error| LineError::from(error).with_max(limit),
            )
            .await
    }
}

impl LineError {
    /// Reports the limit as the user set it (the decoder's is one more,
    /// for the `\r`).
    fn with_max(self, limit: usize) -> Self {
        match self {
            LineError::TooLong { line, .. } => LineError::TooLong { line, max: limit },
            other => other,
        }
    }
}

impl<R> fmt::Debug for Lines<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Lines")
    }
}
