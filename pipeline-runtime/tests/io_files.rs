//! `files(path)`: the lines or frames of a file or a directory of files,
//! with the file's name and the item's number in the envelope's headers,
//! and unreadable files reported as errors without stopping the source.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use pipeline_runtime::chain::{Fuse, Head, drive};
use pipeline_runtime::envelope::Envelope;
use pipeline_runtime::graph::NodeKind;
use pipeline_runtime::io::{
    Bytes, Collected, FileError, FileErrorKind, LineError, collect, files, results,
};
use pipeline_runtime::lifecycle::Control;
use pipeline_runtime::metrics::StageStats;
use pipeline_runtime::stage::{Never, Source};

/// A directory of its own for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "pipeline-io-files-{}-{n}-{test}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn stats(name: &'static str, kind: NodeKind) -> Arc<StageStats> {
    Arc::new(StageStats::new(name, kind))
}

/// Runs `source` into a `collect` sink in chunks of `chunk`; returns what
/// was collected and the source's counters.
async fn drain<S: Source>(source: S, chunk: usize) -> (Vec<S::Out>, Arc<StageStats>) {
    let out = Collected::new();
    let from = stats("files", NodeKind::Source);
    let chain: Fuse<_, _, S::Out, Never, Never> = Fuse::new(
        Head::new(source, from.clone(), chunk),
        collect(&out),
        stats("collect", NodeKind::Sink),
    );
    drive(chain, Control::new()).await.expect("the chain runs");
    (out.take(), from)
}

/// Each line as (file, line number, text, sequence id).
fn described(lines: &[Envelope<String>]) -> Vec<(String, u64, String, u64)> {
    lines
        .iter()
        .map(|line| {
            (
                line.header("file").expect("a file header").to_owned(),
                line.header("line")
                    .expect("a line header")
                    .parse()
                    .expect("a number"),
                line.payload().clone(),
                line.seq(),
            )
        })
        .collect()
}

fn name(path: &Path) -> String {
    path.display().to_string()
}

#[tokio::test]
async fn a_file_is_read_line_by_line_with_its_name_and_line_numbers() {
    let dir = TempDir::new("one-file");
    let log = dir.write("access.log", "GET /\r\n\nPOST /orders");
    let (lines, read) = drain(files(&log).lines(), 512).await;
    let log = name(&log);
    assert_eq!(
        described(&lines),
        [
            (log.clone(), 1, "GET /".to_owned(), 0),
            (log.clone(), 2, String::new(), 1),
            (log.clone(), 3, "POST /orders".to_owned(), 2),
        ],
        "CRLF and LF endings, an empty line, a last line without an ending"
    );
    assert_eq!((read.items_out(), read.failed()), (3, 0));
}

#[tokio::test]
async fn a_directory_is_read_file_by_file_in_name_order() {
    let dir = TempDir::new("dir");
    let b = dir.write("b.log", "b1\nb2\nb3\n");
    let a = dir.write("a.log", "a1\na2\n");
    let c = dir.write("c.txt", "c1");
    dir.write("empty.log", "");
    // Subdirectories are not read.
    std::fs::create_dir(dir.path().join("a-sub")).unwrap();
    std::fs::write(dir.path().join("a-sub").join("inner.log"), "hidden\n").unwrap();

    // Chunks of 2 end in the middle of files and across them.
    for chunk in [1, 2, 512] {
        let (lines, read) = drain(files(dir.path()).lines(), chunk).await;
        let got = described(&lines);
        let (a, b, c) = (name(&a), name(&b), name(&c));
        assert_eq!(
            got,
            [
                (a.clone(), 1, "a1".to_owned(), 0),
                (a.clone(), 2, "a2".to_owned(), 1),
                (b.clone(), 1, "b1".to_owned(), 2),
                (b.clone(), 2, "b2".to_owned(), 3),
                (b.clone(), 3, "b3".to_owned(), 4),
                (c.clone(), 1, "c1".to_owned(), 5),
            ],
            "chunk {chunk}"
        );
        assert_eq!(read.failed(), 0);
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_file_that_cannot_be_opened_is_an_error_and_reading_goes_on() {
    let dir = TempDir::new("unopenable");
    dir.write("a.log", "a1\n");
    let dangling = dir.path().join("b.log");
    std::os::unix::fs::symlink(dir.path().join("missing"), &dangling).unwrap();
    let c = dir.write("c.log", "c1\n");

    // Counted as a failed read of the source, and skipped.
    let (lines, read) = drain(files(dir.path()).lines(), 512).await;
    let texts: Vec<_> = lines.iter().map(|l| l.payload().as_str()).collect();
    assert_eq!(texts, ["a1", "c1"]);
    assert_eq!(lines[1].header("file"), Some(name(&c).as_str()));
    assert_eq!(lines[1].seq(), 1, "sequence ids count items only");
    assert_eq!((read.items_out(), read.failed()), (2, 1));
    let last = read.last_error().expect("the error is recorded");
    assert!(last.contains("b.log: cannot open"), "{last}");

    // As an item, it names the file.
    let (items, _) = drain(results(files(dir.path()).lines()), 512).await;
    assert_eq!(items.len(), 3);
    let error = items[1].as_ref().unwrap_err();
    assert_eq!(error.path(), dangling);
    assert!(
        matches!(error.kind(), FileErrorKind::Open(e) if e.kind() == std::io::ErrorKind::NotFound)
    );
    assert_eq!(error.number(), None);
}

/// `/proc/self/mem` opens, but reading it at offset 0 fails (EIO).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_read_that_fails_skips_the_rest_of_the_file() {
    let mem = Path::new("/proc/self/mem");
    if std::fs::File::open(mem).is_err() {
        eprintln!("skipped: {} cannot be opened here", mem.display());
        return;
    }
    let dir = TempDir::new("unreadable");
    dir.write("a.log", "a1\n");
    std::os::unix::fs::symlink(mem, dir.path().join("b.log")).unwrap();
    dir.write("c.log", "c1\n");
    let (items, _) = drain(results(files(dir.path()).lines()), 512).await;
    let shown: Vec<_> = items
        .iter()
        .map(|item| match item {
            Ok(line) => line.payload().clone(),
            Err(error) => match error.kind() {
                FileErrorKind::Read(_) => format!("read error in {}", error.path().display()),
                other => panic!("unexpected {other:?}"),
            },
        })
        .collect();
    assert_eq!(
        shown,
        [
            "a1".to_owned(),
            format!("read error in {}", dir.path().join("b.log").display()),
            "c1".to_owned(),
        ]
    );
}

#[tokio::test]
async fn bad_lines_are_skipped_with_their_file_and_number() {
    let dir = TempDir::new("bad-lines");
    let log = dir.write("bad.log", b"ok\n\xff\xfe\ntoo long\nfine\r\n".as_slice());
    let (items, read) = drain(results(files(&log).lines().max_line(4)), 512).await;
    assert_eq!(items.len(), 4);
    let ok = |i: usize| {
        let line: &Envelope<String> = items[i].as_ref().unwrap();
        (line.payload().as_str(), line.header("line").unwrap())
    };
    assert_eq!(ok(0), ("ok", "1"));
    assert_eq!(ok(3), ("fine", "4"), "numbers count the skipped lines");
    let error = |i: usize| -> &FileError { items[i].as_ref().unwrap_err() };
    assert!(matches!(
        error(1).kind(),
        FileErrorKind::Line(LineError::InvalidUtf8 { line: 2, .. })
    ));
    assert!(matches!(
        error(2).kind(),
        FileErrorKind::Line(LineError::TooLong { line: 3, max: 4 })
    ));
    assert_eq!((error(1).number(), error(2).number()), (Some(2), Some(3)));
    assert_eq!(error(1).path(), log);
    let shown = error(2).to_string();
    assert_eq!(
        shown,
        format!("{}: line 3 is longer than 4 bytes; skipped", log.display())
    );
    assert_eq!(read.failed(), 0, "wrapped in `results`, errors are items");

    // Unwrapped, each is a counted failure of the source.
    let (lines, read) = drain(files(&log).lines().max_line(4), 512).await;
    assert_eq!(lines.len(), 2);
    assert_eq!(read.failed(), 2);
}

#[tokio::test]
async fn a_missing_path_is_one_error_then_the_end() {
    let dir = TempDir::new("missing");
    let missing = dir.path().join("nothing-here");
    let (items, _) = drain(results(files(&missing).lines()), 512).await;
    assert_eq!(items.len(), 1);
    let error = items[0].as_ref().unwrap_err();
    assert_eq!(error.path(), missing);
    assert!(matches!(error.kind(), FileErrorKind::Open(_)));
    assert!(error.to_string().contains("nothing-here: cannot open"));
}

#[tokio::test]
async fn an_empty_directory_ends_at_once() {
    let dir = TempDir::new("empty");
    let (lines, read) = drain(files(dir.path()).lines(), 512).await;
    assert!(lines.is_empty());
    assert_eq!((read.items_out(), read.failed()), (0, 0));
}

#[tokio::test]
async fn frames_carry_the_file_and_the_frame_number() {
    let dir = TempDir::new("frames");
    let a = dir.write("a.bin", b"one\0\0three\0far too long\0six".as_slice());
    let b = dir.write("b.bin", b"\xff\0".as_slice());
    let (items, _) = drain(results(files(dir.path()).frames(b"\0", 8)), 512).await;
    let shown: Vec<_> = items
        .iter()
        .map(|item| match item {
            Ok(frame) => (
                frame.header("file").unwrap().to_owned(),
                frame.header("frame").unwrap().to_owned(),
                Ok(frame.payload().clone()),
            ),
            Err(error) => (
                error.path().display().to_string(),
                error.number().unwrap().to_string(),
                Err(matches!(error.kind(), FileErrorKind::Frame(_))),
            ),
        })
        .collect();
    let (a, b) = (name(&a), name(&b));
    let frame = |file: &str, n: &str, bytes: &'static [u8]| {
        (file.to_owned(), n.to_owned(), Ok(Bytes::from_static(bytes)))
    };
    assert_eq!(
        shown,
        [
            frame(&a, "1", b"one"),
            frame(&a, "2", b""),
            frame(&a, "3", b"three"),
            (a.clone(), "4".to_owned(), Err(true)),
            frame(&a, "5", b"six"),
            frame(&b, "1", b"\xff"),
        ],
        "frames are bytes: no UTF-8 check"
    );
}

#[tokio::test]
async fn a_long_file_in_small_chunks_keeps_every_line_in_order() {
    let dir = TempDir::new("long");
    let text: String = (1..=20_000).map(|n| format!("line {n}\n")).collect();
    let log = dir.write("long.log", text);
    let (lines, read) = drain(files(&log).lines(), 7).await;
    assert_eq!(lines.len(), 20_000);
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        assert_eq!(line.payload(), &format!("line {n}"));
        assert_eq!(line.header("line"), Some(n.to_string().as_str()));
        assert_eq!(line.seq(), i as u64);
    }
    assert_eq!(read.items_out(), 20_000);
}

#[tokio::test]
async fn a_stopped_pipeline_stops_reading_files() {
    let dir = TempDir::new("stop");
    dir.write("a.log", "a1\na2\n");
    let out = Collected::new();
    let control = Control::new();
    control.stop();
    let chain: Fuse<_, _, Envelope<String>, Never, Never> = Fuse::new(
        Head::new(
            files(dir.path()).lines(),
            stats("files", NodeKind::Source),
            512,
        ),
        collect(&out),
        stats("collect", NodeKind::Sink),
    );
    drive(chain, control).await.unwrap();
    assert!(out.is_empty());
}
