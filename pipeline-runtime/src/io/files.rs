use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use tokio::fs::File;
use tokio::time::Instant;

use super::frames::{Delimited, FrameError, FrameReader};
use super::lines::{DEFAULT_MAX_LINE, LineError};
use crate::envelope::Envelope;
use crate::stage::{Pull, Source, StageContext};

/// The header naming the file an item was read from (see [`files`]).
pub const FILE_HEADER: &str = "file";

/// The header holding the number, from 1, of a line within its file (see
/// [`Files::lines`]).
pub const LINE_HEADER: &str = "line";

/// The header holding the number, from 1, of a frame within its file (see
/// [`Files::frames`]).
pub const FRAME_HEADER: &str = "frame";

/// Files to read, by path: a file, or a directory of files. See [`files`].
///
/// Not a source by itself: say how to cut the files with
/// [`lines`](Files::lines) or [`frames`](Files::frames).
#[derive(Debug, Clone)]
pub struct Files {
    path: PathBuf,
}

/// Reads the file at `path`, or every file in the directory at `path`, as a
/// source: [`lines`](Files::lines) gives an `Envelope<String>` per line,
/// [`frames`](Files::frames) an `Envelope<Bytes>` per delimited frame.
///
/// - **Which files**: if `path` is a directory, its regular files (and
///   symbolic links to files), in the order of their names (byte order),
///   one after the other; subdirectories and other entries are skipped, so
///   it does not recurse. The directory is listed once, when reading
///   starts. Otherwise `path` itself is read.
/// - **Headers**: each item's envelope carries the header [`FILE_HEADER`]
///   (`file`, the path the file was opened at: `path` itself, or `path`
///   joined with the file's name) and [`LINE_HEADER`] (`line`) or
///   [`FRAME_HEADER`] (`frame`), the item's number within its file, from 1,
///   counting skipped lines too. The envelope's sequence id counts the
///   items of the source, from 0, across files.
/// - **Errors**: a file that cannot be opened (missing, no permission, a
///   dangling link), a read that fails part-way, a line that is too long
///   or not UTF-8, or a frame that is too long, is reported as a
///   [`FileError`] naming the file, through [`Source::fill`]'s error: the
///   runtime counts it as a failed item of the source and logs it at
///   `warn`. Reading goes on: with the next line or frame of the file, or,
///   if the file could not be opened or read, with the next file. A `path`
///   that does not exist, or a directory that cannot be listed, is one
///   error, and the source ends. To handle the errors as items, wrap the
///   source in [`results`](super::results).
/// - **Memory**: one file is open at a time, read through one reused
///   buffer, with the bounds of [`lines`](super::lines) and
///   [`frames`](super::frames): a line or frame too long is dropped as it
///   arrives.
///
/// Reads go through `tokio::fs`, which runs them on tokio's blocking
/// threads.
///
/// ```
/// use pipeline_runtime::io::files;
/// use pipeline_runtime::stage::{Pull, Source, StageContext};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("files-doctest-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// std::fs::write(dir.join("b.log"), "GET /b\n")?;
/// std::fs::write(dir.join("a.log"), "GET /a\r\nPOST /a\n")?;
///
/// let mut logs = files(&dir).lines();
/// let (mut out, ctx) = (Vec::new(), StageContext::detached("files"));
/// while logs.fill(&mut out, 16, &ctx).await.unwrap() == Pull::More {}
/// let read: Vec<_> = out
///     .iter()
///     .map(|line| (line.header("file").unwrap(), line.header("line").unwrap(), line.payload().as_str()))
///     .collect();
/// let (a, b) = (dir.join("a.log"), dir.join("b.log"));
/// let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
/// assert_eq!(read, [(a, "1", "GET /a"), (a, "2", "POST /a"), (b, "1", "GET /b")]);
/// assert_eq!(out[2].seq(), 2);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub fn files(path: impl Into<PathBuf>) -> Files {
    Files { path: path.into() }
}

impl Files {
    /// The source of the files' lines, each an `Envelope<String>` without
    /// its line ending, cut as [`lines`](super::lines) cuts them (`\n` or
    /// `\r\n`; the last line is delivered without an ending; lines longer
    /// than [`DEFAULT_MAX_LINE`] bytes, or not UTF-8, are skipped with an
    /// error; see [`FileLines::max_line`]).
    pub fn lines(self) -> FileLines {
        FileLines {
            walk: Walk::new(self.path),
            max: DEFAULT_MAX_LINE,
        }
    }

    /// The source of the files' frames, each an `Envelope<Bytes>` without
    /// its `delimiter`, cut as [`frames`](super::frames) cuts them (a frame
    /// longer than `max_frame` bytes is skipped with an error; the bytes
    /// after the last delimiter are the last frame).
    ///
    /// # Panics
    ///
    /// If `delimiter` is empty.
    pub fn frames(self, delimiter: impl AsRef<[u8]>, max_frame: usize) -> FileFrames {
        let delimiter: Box<[u8]> = delimiter.as_ref().into();
        assert!(!delimiter.is_empty(), "a frame delimiter cannot be empty");
        FileFrames {
            walk: Walk::new(self.path),
            delimiter,
            max: max_frame,
        }
    }
}

/// Why [`files`] could not deliver an item: what went wrong, and in which
/// file.
#[derive(Debug, Clone)]
pub struct FileError {
    path: PathBuf,
    kind: FileErrorKind,
}

/// What went wrong in a [`FileError`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum FileErrorKind {
    /// The file could not be opened, or the path could not be read as a
    /// file or listed as a directory. Nothing is read from it; the source
    /// goes on with the next file (or ends, if it was the source's `path`).
    Open(Arc<io::Error>),
    /// Reading the file failed part-way: the rest of the file is skipped,
    /// and the source goes on with the next file.
    Read(Arc<io::Error>),
    /// A line of the file was skipped: too long, or not UTF-8
    /// ([`LineError::TooLong`] or [`LineError::InvalidUtf8`]).
    Line(LineError),
    /// A frame of the file was skipped: too long
    /// ([`FrameError::TooLong`]).
    Frame(FrameError),
}

impl FileError {
    /// The file (or directory) the error is about.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What went wrong.
    pub fn kind(&self) -> &FileErrorKind {
        &self.kind
    }

    /// The number of the line or frame that was skipped, from 1, if the
    /// error is about one.
    pub fn number(&self) -> Option<u64> {
        match &self.kind {
            FileErrorKind::Line(error) => error.line(),
            FileErrorKind::Frame(FrameError::TooLong { frame, .. }) => Some(*frame),
            _ => None,
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.kind {
            FileErrorKind::Open(error) => write!(f, "{path}: cannot open: {error}"),
            FileErrorKind::Read(error) => {
                write!(f, "{path}: read failed: {error}; rest of the file skipped")
            }
            FileErrorKind::Line(error) => write!(f, "{path}: {error}"),
            FileErrorKind::Frame(error) => write!(f, "{path}: {error}"),
        }
    }
}

impl std::error::Error for FileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            FileErrorKind::Open(error) | FileErrorKind::Read(error) => Some(&**error),
            FileErrorKind::Line(error) => Some(error),
            FileErrorKind::Frame(error) => Some(error),
        }
    }
}

/// A source of the lines of files. See [`files`] and [`Files::lines`].
pub struct FileLines {
    walk: Walk,
    /// The longest line, not counting its ending.
    max: usize,
}

impl FileLines {
    /// Sets the longest line accepted, in bytes, not counting its line
    /// ending (by default [`DEFAULT_MAX_LINE`]). Longer lines are skipped
    /// with a [`FileErrorKind::Line`] error.
    pub fn max_line(mut self, bytes: usize) -> Self {
        self.max = bytes;
        self
    }
}

impl Source for FileLines {
    type Out = Envelope<String>;
    type Error = FileError;

    async fn fill(
        &mut self,
        out: &mut Vec<Envelope<String>>,
        max: usize,
        _: &StageContext,
    ) -> Result<Pull, FileError> {
        let limit = self.max;
        self.walk
            .fill(
                out,
                max,
                // One byte more for the `\r` of a `\r\n` ending, which is
                // part of the frame cut at `\n` (as `lines` does).
                || Delimited::new(b"\n", limit.saturating_add(1)),
                LINE_HEADER,
                |frame, line| {
                    let text = frame.strip_suffix(b"\r").unwrap_or(&frame);
                    if text.len() > limit {
                        return Err(FileErrorKind::Line(LineError::TooLong { line, max: limit }));
                    }
                    match std::str::from_utf8(text) {
                        Ok(text) => Ok(text.to_owned()),
                        Err(error) => Err(FileErrorKind::Line(LineError::InvalidUtf8 {
                            line,
                            bytes: frame.slice_ref(text),
                            error,
                        })),
                    }
                },
                |error| match error {
                    FrameError::TooLong { frame, .. } => FileErrorKind::Line(LineError::TooLong {
                        line: frame,
                        max: limit,
                    }),
                    FrameError::Io(error) => FileErrorKind::Read(error),
                },
            )
            .await
    }
}

impl fmt::Debug for FileLines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileLines")
            .field("path", &self.walk.root)
            .field("max_line", &self.max)
            .finish()
    }
}

/// A source of the delimited frames of files. See [`files`] and
/// [`Files::frames`].
pub struct FileFrames {
    walk: Walk,
    delimiter: Box<[u8]>,
    max: usize,
}

impl Source for FileFrames {
    type Out = Envelope<Bytes>;
    type Error = FileError;

    async fn fill(
        &mut self,
        out: &mut Vec<Envelope<Bytes>>,
        max: usize,
        _: &StageContext,
    ) -> Result<Pull, FileError> {
        let (delimiter, limit) = (&self.delimiter, self.max);
        self.walk
            .fill(
                out,
                max,
                || Delimited::new(delimiter, limit),
                FRAME_HEADER,
                |frame, _| Ok(frame),
                |error| match error {
                    FrameError::Io(error) => FileErrorKind::Read(error),
                    error => FileErrorKind::Frame(error),
                },
            )
            .await
    }
}

impl fmt::Debug for FileFrames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileFrames")
            .field("path", &self.walk.root)
            .field("delimiter", &Bytes::copy_from_slice(&self.delimiter))
            .field("max_frame", &self.max)
            .finish()
    }
}

/// The walk through the files: what [`FileLines`] and [`FileFrames`]
/// share.
struct Walk {
    root: PathBuf,
    /// The files left to open, once the root has been looked at.
    queue: Option<VecDeque<PathBuf>>,
    /// The file being read.
    current: Option<Current>,
    /// The sequence id of the next item.
    seq: u64,
}

struct Current {
    path: PathBuf,
    /// The path as the `file` header shows it.
    name: String,
    reader: FrameReader<File>,
}

impl Walk {
    fn new(root: PathBuf) -> Self {
        Walk {
            root,
            queue: None,
            current: None,
            seq: 0,
        }
    }

    /// Appends items to `out`, up to `max`: the frames of the current file
    /// (cut by a decoder from `decoder`, each turned into a payload by
    /// `convert`, given its number), opening the next file when one ends.
    /// A file's end hands on the items read so far, so that the next open
    /// does not hold them back.
    ///
    /// Cancel-safe: the state changes only once each step (listing,
    /// opening, reading a frame) is done.
    #[allow(clippy::too_many_arguments)]
    async fn fill<P>(
        &mut self,
        out: &mut Vec<Envelope<P>>,
        max: usize,
        decoder: impl Fn() -> Delimited,
        number_header: &'static str,
        mut convert: impl FnMut(Bytes, u64) -> Result<P, FileErrorKind>,
        lift: impl Fn(FrameError) -> FileErrorKind,
    ) -> Result<Pull, FileError> {
        let start = out.len();
        // One clock read per fill, not per item.
        let now = Instant::now();
        loop {
            if out.len() >= max {
                return Ok(Pull::More);
            }
            if let Some(current) = &mut self.current {
                let Current { path, name, reader } = current;
                let seq = &mut self.seq;
                let filled = reader
                    .fill(
                        out,
                        max,
                        |frame, number| {
                            let payload = convert(frame, number)?;
                            let mut item = Envelope::with_timestamp(payload, *seq, now);
                            *seq += 1;
                            let headers = &mut item.metadata_mut().headers;
                            headers.insert(FILE_HEADER, name.as_str());
                            headers.insert(number_header, number.to_string());
                            Ok(item)
                        },
                        &lift,
                    )
                    .await;
                match filled {
                    Ok(Pull::More) => return Ok(Pull::More),
                    Ok(Pull::Done) => {
                        self.current = None;
                        if out.len() > start {
                            return Ok(Pull::More);
                        }
                    }
                    // After a read error the reader is done: the next fill
                    // moves on to the next file.
                    Err(kind) => {
                        return Err(FileError {
                            path: path.clone(),
                            kind,
                        });
                    }
                }
                continue;
            }
            let queue = match &mut self.queue {
                Some(queue) => queue,
                None => {
                    let listed = list(&self.root).await;
                    let queue = self.queue.insert(VecDeque::new());
                    *queue = listed?;
                    queue
                }
            };
            let Some(path) = queue.front() else {
                return Ok(Pull::Done);
            };
            let opened = File::open(path).await;
            let path = queue.pop_front().expect("the file just opened");
            match opened {
                Ok(file) => {
                    self.current = Some(Current {
                        name: path.display().to_string(),
                        path,
                        reader: FrameReader::new(file, decoder()),
                    });
                }
                Err(error) => {
                    return Err(FileError {
                        path,
                        kind: FileErrorKind::Open(Arc::new(error)),
                    });
                }
            }
        }
    }
}

/// The files to read under `root`: `root` itself if it is not a directory,
/// else its files in name order.
async fn list(root: &Path) -> Result<VecDeque<PathBuf>, FileError> {
    let failed = |error| FileError {
        path: root.to_path_buf(),
        kind: FileErrorKind::Open(Arc::new(error)),
    };
    let metadata = tokio::fs::metadata(root).await.map_err(failed)?;
    if !metadata.is_dir() {
        return Ok(VecDeque::from([root.to_path_buf()]));
    }
    let mut entries = tokio::fs::read_dir(root).await.map_err(failed)?;
    let mut found = Vec::new();
    while let Some(entry) = entries.next_entry().await.map_err(failed)? {
        let path = entry.path();
        let wanted = match entry.file_type().await {
            Ok(kind) if kind.is_file() => true,
            // A link to a file is read; a dangling one is kept, so that
            // opening it reports the error.
            Ok(kind) if kind.is_symlink() => tokio::fs::metadata(&path)
                .await
                .map_or(true, |target| target.is_file()),
            Ok(_) => false,
            Err(_) => true,
        };
        if wanted {
            found.push((entry.file_name(), path));
        }
    }
    found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(found.into_iter().map(|(_, path)| path).collect())
}
