use std::borrow::Cow;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWrite;

use crate::stage::{BoxError, Emit, Failures, IsSink, Never, Stage, StageContext};

/// Items that [`write()`] and [`write_lines`] can write: anything that is a
/// run of bytes.
#[diagnostic::on_unimplemented(
    message = "`write` and `write_lines` take items that are bytes or text, not `{Self}`",
    label = "`{Self}` is not bytes",
    note = "`Bytes`, `Vec<u8>`, `String`, `&str` and `&[u8]` can be written; `map` the items to one of them first"
)]
pub trait AsBytes {
    /// The bytes to write.
    fn as_bytes(&self) -> &[u8];
}

impl AsBytes for Bytes {
    fn as_bytes(&self) -> &[u8] {
        self
    }
}

impl AsBytes for BytesMut {
    fn as_bytes(&self) -> &[u8] {
        self
    }
}

impl AsBytes for Vec<u8> {
    fn as_bytes(&self) -> &[u8] {
        self
    }
}

impl AsBytes for Box<[u8]> {
    fn as_bytes(&self) -> &[u8] {
        self
    }
}

impl AsBytes for &[u8] {
    fn as_bytes(&self) -> &[u8] {
        self
    }
}

impl<const N: usize> AsBytes for [u8; N] {
    fn as_bytes(&self) -> &[u8] {
        self
    }
}

impl AsBytes for String {
    fn as_bytes(&self) -> &[u8] {
        str::as_bytes(self)
    }
}

impl AsBytes for Box<str> {
    fn as_bytes(&self) -> &[u8] {
        str::as_bytes(self)
    }
}

impl AsBytes for Arc<str> {
    fn as_bytes(&self) -> &[u8] {
        str::as_bytes(self)
    }
}

impl AsBytes for &str {
    fn as_bytes(&self) -> &[u8] {
        str::as_bytes(self)
    }
}

impl AsBytes for Cow<'_, str> {
    fn as_bytes(&self) -> &[u8] {
        str::as_bytes(self)
    }
}

impl AsBytes for Cow<'_, [u8]> {
    fn as_bytes(&self) -> &[u8] {
        self
    }
}

/// Why [`write()`] or [`write_lines`] failed an item: the writer's error.
///
/// Cheap to clone (the `io::Error` is shared), since one failed write can
/// fail several items.
#[derive(Debug, Clone)]
pub struct WriteError {
    error: Arc<io::Error>,
    flushing: bool,
}

impl WriteError {
    fn write(error: io::Error) -> Self {
        WriteError {
            error: Arc::new(error),
            flushing: false,
        }
    }

    fn flush(error: io::Error) -> Self {
        WriteError {
            error: Arc::new(error),
            flushing: true,
        }
    }

    /// The writer's error.
    pub fn io_error(&self) -> &io::Error {
        &self.error
    }

    /// The kind of the writer's error.
    pub fn kind(&self) -> io::ErrorKind {
        self.error.kind()
    }

    /// Whether flushing failed, rather than writing.
    pub fn is_flush(&self) -> bool {
        self.flushing
    }
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.flushing { "flush" } else { "write" };
        write!(f, "{what} failed: {}", self.error)
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.error)
    }
}

/// A sink writing items to an `AsyncWrite`. See [`write()`] and
/// [`write_lines`].
pub struct WriteSink<W> {
    writer: Pin<Box<W>>,
    flush_every: usize,
    /// Append a `\n` to every item.
    lines: bool,
    /// Shut the writer down when the sink closes.
    shutdown: bool,
    /// Bytes written since the last flush.
    unflushed: usize,
    /// The bytes of the items of a chunk, written together; reused.
    buf: Vec<u8>,
    /// Where each of those items ends in `buf`.
    ends: Vec<usize>,
}

/// Bytes gathered before a write when `flush_every` is 0.
const WRITE_SIZE: usize = 64 * 1024;

/// A sink that writes the bytes of each item to `writer`, in order, and
/// flushes the writer each time `flush_every` bytes have been written since
/// the last flush, and when the pipeline completes.
///
/// Items may be `Bytes`, `Vec<u8>`, `String`, `&str` and others (see
/// [`AsBytes`]); [`write_lines`] adds a line ending to each. The items of a
/// chunk are gathered and written together (at most about `flush_every`
/// bytes at a time), so small items do not cost a write each; a chunk is
/// written as soon as it arrives, so nothing waits for more input. A
/// `flush_every` of 0 flushes after every chunk.
///
/// An item counts as written once the writer has taken all its bytes. If a
/// write fails, the items whose bytes it had not taken fail with a
/// [`WriteError`]; if a flush fails, so do the items of the write it
/// followed. Either way the stage's error policy applies (the `errors`
/// port, `on_error = retry(..)`, ...). The final flush failing fails the
/// run. The writer is not shut down unless
/// [`shutdown_on_close`](WriteSink::shutdown_on_close) says so.
///
/// ```
/// use pipeline_runtime::io::write;
/// use pipeline_runtime::stage::{Failures, Stage, StageContext};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut out = write(Vec::<u8>::new(), 32 * 1024);
/// let (ctx, mut failures) = (StageContext::detached("write"), Failures::default());
/// let mut chunk = vec!["GET ", "/"];
/// out.process_chunk(&mut chunk, &mut Vec::new(), &mut failures, &ctx).await;
/// assert_eq!(out.get_ref(), b"GET /");
/// # }
/// ```
///
/// In a pipeline, to standard output:
///
/// ```
/// let out = pipeline_runtime::io::write(tokio::io::stdout(), 32 * 1024);
/// # let _ = out;
/// ```
pub fn write<W: AsyncWrite>(writer: W, flush_every: usize) -> WriteSink<W> {
    WriteSink {
        writer: Box::pin(writer),
        flush_every,
        lines: false,
        shutdown: false,
        unflushed: 0,
        buf: Vec::new(),
        ends: Vec::new(),
    }
}

/// A sink that writes each item followed by `\n`; otherwise as [`write()`].
///
/// ```
/// use pipeline_runtime::io::write_lines;
///
/// # async fn open() -> std::io::Result<()> {
/// let file = tokio::fs::File::create("out.jsonl").await?;
/// let out = write_lines(file, 64 * 1024);
/// # let _ = out;
/// # Ok(())
/// # }
/// ```
pub fn write_lines<W: AsyncWrite>(writer: W, flush_every: usize) -> WriteSink<W> {
    WriteSink {
        lines: true,
        ..write(writer, flush_every)
    }
}

impl<W: AsyncWrite> WriteSink<W> {
    /// Shuts the writer down (after its final flush) when the pipeline
    /// completes: for a socket, that ends the stream for its peer.
    pub fn shutdown_on_close(mut self) -> Self {
        self.shutdown = true;
        self
    }

    /// The writer.
    pub fn get_ref(&self) -> &W {
        self.writer.as_ref().get_ref()
    }

    /// Appends `item` to the pending bytes.
    fn gather(&mut self, item: &impl AsBytes) {
        self.buf.extend_from_slice(item.as_bytes());
        if self.lines {
            self.buf.push(b'\n');
        }
        self.ends.push(self.buf.len());
    }

    /// Writes the pending bytes, flushes if `flush_every` bytes have been
    /// written since the last flush (or at every call, if it is 0), and
    /// records the outcome of the pending items in `failures`.
    async fn settle(&mut self, failures: &mut Failures<WriteError>) {
        let (taken, result) = self.write_pending().await;
        let passed = match &result {
            Ok(()) => self.ends.len(),
            Err(error) if error.is_flush() => 0,
            Err(_) => self.ends.partition_point(|&end| end <= taken),
        };
        match result {
            Ok(()) => failures.note_passed(passed),
            Err(error) => {
                failures.note_passed(passed);
                for _ in passed..self.ends.len() {
                    failures.fail(error.clone());
                }
            }
        }
        self.buf.clear();
        self.ends.clear();
    }

    /// Writes `buf` and flushes if due. Returns how many bytes the writer
    /// took, and the error if it did not take them all or the flush failed
    /// (then every pending item fails).
    async fn write_pending(&mut self) -> (usize, Result<(), WriteError>) {
        let mut taken = 0;
        while taken < self.buf.len() {
            let wrote = poll_fn(|cx| self.writer.as_mut().poll_write(cx, &self.buf[taken..])).await;
            match wrote {
                Ok(0) => {
                    let error =
                        io::Error::new(io::ErrorKind::WriteZero, "the writer took no bytes");
                    return (taken, Err(WriteError::write(error)));
                }
                Ok(n) => {
                    taken += n;
                    self.unflushed += n;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return (taken, Err(WriteError::write(error))),
            }
        }
        if self.unflushed > 0
            && self.unflushed >= self.flush_every
            && let Err(error) = self.flush().await
        {
            return (taken, Err(WriteError::flush(error)));
        }
        (taken, Ok(()))
    }

    async fn flush(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.writer.as_mut().poll_flush(cx)).await?;
        self.unflushed = 0;
        Ok(())
    }

    /// When to write the gathered bytes of a chunk before its end.
    fn write_at(&self) -> usize {
        if self.flush_every == 0 {
            WRITE_SIZE
        } else {
            self.flush_every
        }
    }
}

impl<I: AsBytes, W: AsyncWrite> Stage<I> for WriteSink<W> {
    type Out = Never;
    type Error = WriteError;

    async fn process(
        &mut self,
        item: I,
        _: &mut Emit<'_, Never>,
        _: &StageContext,
    ) -> Result<(), WriteError> {
        self.gather(&item);
        let (_, result) = self.write_pending().await;
        self.buf.clear();
        self.ends.clear();
        result
    }

    async fn process_chunk(
        &mut self,
        input: &mut Vec<I>,
        _: &mut Vec<Never>,
        failures: &mut Failures<WriteError>,
        _: &StageContext,
    ) {
        let write_at = self.write_at();
        for item in input.drain(..) {
            self.gather(&item);
            if self.buf.len() >= write_at {
                self.settle(failures).await;
            }
        }
        if !self.ends.is_empty() {
            self.settle(failures).await;
        }
    }

    async fn close(&mut self, _: &StageContext) -> Result<(), BoxError> {
        self.flush().await.map_err(WriteError::flush)?;
        if self.shutdown {
            poll_fn(|cx| self.writer.as_mut().poll_shutdown(cx))
                .await
                .map_err(WriteError::write)?;
        }
        Ok(())
    }
}

impl<W> IsSink for WriteSink<W> {}

impl<W> fmt::Debug for WriteSink<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteSink")
            .field("flush_every", &self.flush_every)
            .field("lines", &self.lines)
            .field("unflushed", &self.unflushed)
            .finish()
    }
}
