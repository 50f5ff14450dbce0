use std::fmt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::{Buf, Bytes, BytesMut};
use futures::Stream;
use tokio::io::AsyncRead;
use tokio_util::codec::{Decoder, FramedRead};

use crate::stage::{Pull, Source, StageContext};

/// Why [`frames`] could not deliver a frame.
///
/// A frame that is too long is skipped and reading goes on after its
/// delimiter; a read error ends the source.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame had more than `max` bytes before its delimiter (or before
    /// the end of the input). Its bytes were dropped as they came in, and
    /// the next frame starts after the next delimiter.
    TooLong {
        /// The frame's number, from 1.
        frame: u64,
        /// Where the frame starts in the input, in bytes.
        offset: u64,
        /// The limit it went over.
        max: usize,
    },
    /// Reading failed; the source ends after reporting it.
    Io(Arc<io::Error>),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLong { frame, offset, max } => write!(
                f,
                "frame {frame} (at byte {offset}) is longer than {max} bytes; skipped to the next delimiter"
            ),
            FrameError::Io(error) => write!(f, "read failed: {error}"),
        }
    }
}

impl std::error::Error for FrameError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FrameError::Io(error) => Some(&**error),
            FrameError::TooLong { .. } => None,
        }
    }
}

/// A tokio-util decoder cutting a byte stream at a delimiter of one or
/// more bytes, with a bound on the frame length.
///
/// Its items are `Result`s so that a frame that is too long is one item
/// and not a decoder error: `FramedRead` stops decoding after an error.
#[derive(Debug)]
pub(crate) struct Delimited {
    delimiter: Box<[u8]>,
    max: usize,
    /// No delimiter starts before this index of the buffer: the bytes
    /// before it were searched already.
    searched: usize,
    /// Dropping the rest of a frame that is too long, up to and including
    /// its delimiter.
    discarding: bool,
    /// Frames started so far, counting the current one once it is known.
    frames: u64,
    /// Where the buffer's first byte is in the input.
    offset: u64,
}

impl Delimited {
    /// A decoder for frames ending in `delimiter`, of at most `max` bytes.
    ///
    /// # Panics
    ///
    /// If `delimiter` is empty.
    pub(crate) fn new(delimiter: &[u8], max: usize) -> Self {
        assert!(!delimiter.is_empty(), "a frame delimiter cannot be empty");
        Delimited {
            delimiter: delimiter.into(),
            max,
            searched: 0,
            discarding: false,
            frames: 0,
            offset: 0,
        }
    }

    /// The number of the last frame decoded (or skipped), from 1.
    pub(crate) fn frames(&self) -> u64 {
        self.frames
    }

    pub(crate) fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// Where the next delimiter starts in `buf`, searching from `searched`.
    fn find(&self, buf: &[u8]) -> Option<usize> {
        let (&first, rest) = self.delimiter.split_first()?;
        let mut from = self.searched;
        while let Some(at) = buf.get(from..)?.iter().position(|&b| b == first) {
            let at = from + at;
            let end = at + 1 + rest.len();
            match buf.get(at + 1..end) {
                Some(tail) if tail == rest => return Some(at),
                Some(_) => from = at + 1,
                // The delimiter may continue in the next read.
                None => return None,
            }
        }
        None
    }

    fn consume(&mut self, buf: &mut BytesMut, count: usize) {
        buf.advance(count);
        self.offset += count as u64;
        self.searched = 0;
    }

    fn too_long(&mut self, offset: u64) -> FrameError {
        FrameError::TooLong {
            frame: self.frames,
            offset,
            max: self.max,
        }
    }
}

impl Decoder for Delimited {
    type Item = Result<Bytes, FrameError>;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, io::Error> {
        loop {
            let Some(at) = self.find(buf) else {
                // Bytes that cannot start a delimiter any more: all but the
                // last `delimiter.len() - 1`, which may be its beginning.
                let scanned = buf.len().saturating_sub(self.delimiter.len() - 1);
                if self.discarding {
                    self.consume(buf, scanned);
                    return Ok(None);
                }
                if scanned > self.max {
                    // Too long already: say so now and drop the frame's
                    // bytes as they come, instead of buffering them.
                    self.frames += 1;
                    let error = self.too_long(self.offset);
                    self.consume(buf, scanned);
                    self.discarding = true;
                    return Ok(Some(Err(error)));
                }
                self.searched = scanned;
                return Ok(None);
            };
            let end = at + self.delimiter.len();
            if self.discarding {
                // The end of a frame already reported as too long.
                self.consume(buf, end);
                self.discarding = false;
                continue;
            }
            self.frames += 1;
            let offset = self.offset;
            if at > self.max {
                self.consume(buf, end);
                return Ok(Some(Err(self.too_long(offset))));
            }
            // Zero-copy: the frame shares the read buffer's memory.
            let frame = buf.split_to(at).freeze();
            self.consume(buf, self.delimiter.len());
            self.offset += at as u64;
            return Ok(Some(Ok(frame)));
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, io::Error> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        let len = buf.len();
        if self.discarding || len == 0 {
            // The tail of a frame already reported as too long, or nothing.
            self.consume(buf, len);
            self.discarding = false;
            return Ok(None);
        }
        // The last frame, without its delimiter.
        self.frames += 1;
        let offset = self.offset;
        if len > self.max {
            self.consume(buf, len);
            return Ok(Some(Err(self.too_long(offset))));
        }
        self.offset += len as u64;
        self.searched = 0;
        Ok(Some(Ok(buf.split().freeze())))
    }
}

/// Frames read from an `AsyncRead`: what [`frames`] and
/// [`lines`](super::lines) share.
pub(crate) struct FrameReader<R> {
    framed: Pin<Box<FramedRead<R, Delimited>>>,
    /// The input ended or failed: the next fill is the last.
    done: bool,
}

impl<R: AsyncRead> FrameReader<R> {
    pub(crate) fn new(reader: R, decoder: Delimited) -> Self {
        FrameReader {
            framed: Box::pin(FramedRead::new(reader, decoder)),
            done: false,
        }
    }

    pub(crate) fn decoder_mut(&mut self) -> &mut Delimited {
        self.framed.as_mut().decoder_pin_mut()
    }

    /// Appends frames to `out`, each turned into an item by `convert`
    /// (given the frame and its number), until `out` holds `max` items or
    /// no frame is ready. A frame that is too long, an item `convert`
    /// refuses, or a read error ends the fill with that error, keeping the
    /// items before it; a read error also ends the source.
    pub(crate) async fn fill<T, E>(
        &mut self,
        out: &mut Vec<T>,
        max: usize,
        mut convert: impl FnMut(Bytes, u64) -> Result<T, E>,
        lift: impl Fn(FrameError) -> E,
    ) -> Result<Pull, E> {
        if self.done {
            return Ok(Pull::Done);
        }
        let start = out.len();
        poll_fn(|cx| {
            loop {
                if out.len() >= max {
                    return Poll::Ready(Ok(Pull::More));
                }
                match self.framed.as_mut().poll_next(cx) {
                    Poll::Ready(Some(Ok(Ok(frame)))) => {
                        match convert(frame, self.framed.decoder().frames()) {
                            Ok(item) => out.push(item),
                            Err(error) => return Poll::Ready(Err(error)),
                        }
                    }
                    Poll::Ready(Some(Ok(Err(error)))) => return Poll::Ready(Err(lift(error))),
                    Poll::Ready(Some(Err(error))) => {
                        self.done = true;
                        return Poll::Ready(Err(lift(FrameError::Io(Arc::new(error)))));
                    }
                    Poll::Ready(None) => {
                        self.done = true;
                        return Poll::Ready(Ok(Pull::Done));
                    }
                    Poll::Pending if out.len() > start => return Poll::Ready(Ok(Pull::More)),
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
        .await
    }
}

/// A source of delimited frames read from an `AsyncRead`. See [`frames`].
pub struct Frames<R> {
    reader: FrameReader<R>,
}

/// A source that cuts the bytes of `reader` into frames at each
/// `delimiter` (one or more bytes), and yields each frame without its
/// delimiter as [`Bytes`].
///
/// - **Zero-copy**: a frame is a slice of the read buffer, not a copy. The
///   buffer is reused once the frames cut from it are dropped; a frame kept
///   alive keeps its part of the buffer.
/// - **Bounded**: a frame of more than `max_frame` bytes (not counting the
///   delimiter) fails with [`FrameError::TooLong`] as soon as it is known to
///   be too long; its bytes are dropped as they arrive and reading resumes
///   after the next delimiter. So memory stays within about `max_frame`
///   plus one read, whatever the input.
/// - **The end**: bytes after the last delimiter are delivered as a last
///   frame; an input that ends with a delimiter has no empty frame after it.
/// - **Errors**: a frame that is too long, or a failed read, is reported
///   through [`Source::fill`]'s error: the runtime counts it as a failed
///   item of the source and logs it at `warn`, with the frame's number and
///   offset. A failed read ends the source. To handle them as items, wrap
///   the source in [`results`](super::results).
///
/// ```
/// use pipeline_runtime::io::{Bytes, FrameError, frames};
/// use pipeline_runtime::stage::{Source, StageContext};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // From any `AsyncRead`: a file, a socket, or bytes in memory.
/// let input: &[u8] = b"HELO\r\nMAIL FROM:<a@very.long.domain>\r\nQUIT";
/// let mut commands = frames(input, b"\r\n", 16);
/// let (mut out, ctx) = (Vec::new(), StageContext::detached("frames"));
/// // The second frame is too long: the fill stops there with its error...
/// let error = commands.fill(&mut out, 16, &ctx).await.unwrap_err();
/// assert!(matches!(error, FrameError::TooLong { frame: 2, offset: 6, max: 16 }));
/// // ... and the next one goes on after it.
/// commands.fill(&mut out, 16, &ctx).await.unwrap();
/// assert_eq!(out, [Bytes::from_static(b"HELO"), Bytes::from_static(b"QUIT")]);
/// # }
/// ```
///
/// # Panics
///
/// If `delimiter` is empty.
pub fn frames<R: AsyncRead>(reader: R, delimiter: impl AsRef<[u8]>, max_frame: usize) -> Frames<R> {
    Frames {
        reader: FrameReader::new(reader, Delimited::new(delimiter.as_ref(), max_frame)),
    }
}

impl<R: AsyncRead> Source for Frames<R> {
    type Out = Bytes;
    type Error = FrameError;

    async fn fill(
        &mut self,
        out: &mut Vec<Bytes>,
        max: usize,
        _: &StageContext,
    ) -> Result<Pull, FrameError> {
        self.reader
            .fill(out, max, |frame, _| Ok(frame), |error| error)
            .await
    }
}

impl<R> fmt::Debug for Frames<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Frames")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `pieces` fed one at a time, then the end of input.
    fn decode(delimiter: &[u8], max: usize, pieces: &[&[u8]]) -> Vec<Result<Vec<u8>, String>> {
        let mut decoder = Delimited::new(delimiter, max);
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        let mut take = |item: Result<Bytes, FrameError>| {
            frames.push(item.map(|b| b.to_vec()).map_err(|e| e.to_string()));
        };
        for piece in pieces {
            buf.extend_from_slice(piece);
            while let Some(item) = decoder.decode(&mut buf).unwrap() {
                take(item);
            }
        }
        while let Some(item) = decoder.decode_eof(&mut buf).unwrap() {
            take(item);
        }
        frames
    }

    fn ok(frames: &[&str]) -> Vec<Result<Vec<u8>, String>> {
        frames.iter().map(|f| Ok(f.as_bytes().to_vec())).collect()
    }

    #[test]
    fn cuts_at_a_single_byte_delimiter_and_delivers_the_tail() {
        assert_eq!(
            decode(b"\n", 100, &[b"a\nbb\n\nc"]),
            ok(&["a", "bb", "", "c"])
        );
        assert_eq!(decode(b"\n", 100, &[b"a\n"]), ok(&["a"]));
        assert_eq!(decode(b"\n", 100, &[b""]), ok(&[]));
        assert_eq!(decode(b"\n", 100, &[b"\n"]), ok(&[""]));
    }

    #[test]
    fn a_multi_byte_delimiter_split_across_reads_is_found() {
        let whole = decode(b"\r\n", 100, &[b"ab\r\ncd\r\nef"]);
        assert_eq!(whole, ok(&["ab", "cd", "ef"]));
        // Every split point, including inside the delimiter.
        let input = b"ab\r\ncd\r\nef";
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            assert_eq!(decode(b"\r\n", 100, &[a, b]), whole, "cut at {cut}");
        }
        // One byte per read.
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(decode(b"\r\n", 100, &bytes), whole);
    }

    #[test]
    fn a_lone_first_byte_of_the_delimiter_is_data() {
        assert_eq!(decode(b"\r\n", 100, &[b"a\rb\r\n\r"]), ok(&["a\rb", "\r"]));
        assert_eq!(decode(b"--", 100, &[b"a-b---c"]), ok(&["a-b", "-c"]));
    }

    #[test]
    fn an_overlong_frame_is_one_error_and_the_next_frame_is_read() {
        let frames = decode(b"\n", 4, &[b"12345678\nok\n"]);
        assert_eq!(frames.len(), 2);
        assert_eq!(
            frames[0],
            Err("frame 1 (at byte 0) is longer than 4 bytes; skipped to the next delimiter".into())
        );
        assert_eq!(frames[1], Ok(b"ok".to_vec()));
        // Fed in small pieces, it is reported before its end arrives, once.
        let pieces: Vec<&[u8]> = b"ab\n123456789012\r\nok\r\n".chunks(3).collect();
        let frames = decode(b"\r\n", 4, &pieces);
        assert_eq!(
            frames,
            vec![
                Err(
                    "frame 1 (at byte 0) is longer than 4 bytes; skipped to the next delimiter"
                        .into()
                ),
                Ok(b"ok".to_vec()),
            ],
            "`ab\\n` is part of the first frame: the delimiter is CRLF"
        );
        let pieces: Vec<&[u8]> = b"ab\r\n123456789012\r\nok\r\n".chunks(3).collect();
        let frames = decode(b"\r\n", 4, &pieces);
        assert_eq!(frames[0], Ok(b"ab".to_vec()));
        assert_eq!(
            frames[1],
            Err("frame 2 (at byte 4) is longer than 4 bytes; skipped to the next delimiter".into())
        );
        assert_eq!(frames[2], Ok(b"ok".to_vec()));
        assert_eq!(frames.len(), 3);
    }

    #[test]
    fn a_frame_of_exactly_max_bytes_passes() {
        assert_eq!(decode(b"\n", 4, &[b"1234\n1234"]), ok(&["1234", "1234"]));
        let frames = decode(b"\n", 4, &[b"1234\n12345"]);
        assert_eq!(frames[0], Ok(b"1234".to_vec()));
        assert!(frames[1].is_err());
    }

    #[test]
    fn an_overlong_tail_without_delimiter_is_an_error() {
        let frames = decode(b"\n", 3, &[b"ok\n", b"toolong"]);
        assert_eq!(frames[0], Ok(b"ok".to_vec()));
        assert_eq!(
            frames[1],
            Err("frame 2 (at byte 3) is longer than 3 bytes; skipped to the next delimiter".into())
        );
        assert_eq!(frames.len(), 2);
    }

    #[test]
    fn the_buffer_stays_bounded_while_discarding() {
        let mut decoder = Delimited::new(b"\r\n", 8);
        let mut buf = BytesMut::new();
        let mut errors = 0;
        for _ in 0..1000 {
            buf.extend_from_slice(&[b'x'; 100]);
            while let Some(item) = decoder.decode(&mut buf).unwrap() {
                assert!(item.is_err());
                errors += 1;
            }
            assert!(
                buf.len() <= 8 + 1,
                "holds at most a frame and a partial delimiter"
            );
        }
        buf.extend_from_slice(b"\r\nok\r\n");
        assert!(
            decoder
                .decode(&mut buf)
                .unwrap()
                .unwrap()
                .is_ok_and(|f| f == "ok")
        );
        assert_eq!(errors, 1);
    }

    #[test]
    fn frames_are_slices_of_the_read_buffer() {
        let mut decoder = Delimited::new(b"\n", 100);
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(b"abc\ndef\n");
        let base = buf.as_ptr();
        let first = decoder.decode(&mut buf).unwrap().unwrap().unwrap();
        let second = decoder.decode(&mut buf).unwrap().unwrap().unwrap();
        assert_eq!(first.as_ptr(), base);
        assert_eq!(second.as_ptr(), base.wrapping_add(4));
    }
}
