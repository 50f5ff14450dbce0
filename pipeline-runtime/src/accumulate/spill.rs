//! On-disk storage for spilled accumulator state: [`SpillStore`].
//!
//! When an accumulation with `spill` goes over its memory budget, the state
//! of its coldest keys is encoded with [`Spill`](super::codec::Spill) and
//! handed to a [`SpillStore`] under an opaque `u64` record id; when a key
//! comes back, or the run ends, the record is [taken](SpillStore::take)
//! back. The store owns a per-run directory that it creates on the first
//! [`put`](SpillStore::put) and removes, with everything in it, when it is
//! dropped.
//!
//! # Files and format
//!
//! The run directory is `<dir>/pipeline-spill-<pid>-<n>`, where `<dir>` is
//! the configured directory or [`std::env::temp_dir`], which must exist, and
//! `<n>` a per-process counter. On Unix it is created with mode `0700`.
//! Records are appended to the current file, `spill-<NNNNNN>.dat`. Each
//! record is a 32-byte header followed by the payload; all integers are
//! little-endian:
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 4 | magic, `b"PSPL"` |
//! | 4 | 4 | format version, `u32`, currently [`FORMAT_VERSION`] (`1`) |
//! | 8 | 8 | record id, `u64` |
//! | 16 | 8 | payload length in bytes, `u64` |
//! | 24 | 4 | CRC-32 (IEEE 802.3, as in zlib and gzip) of the payload, `u32` |
//! | 28 | 4 | CRC-32 of header bytes 0..28, `u32` |
//! | 32 | length | payload |
//!
//! There is no file header: a file is a plain sequence of records, and the
//! in-memory index (id to file, offset, length) is the only way in. Files
//! are scratch space for one run; they are never fsynced and never read by
//! another process.
//!
//! # Faults
//!
//! [`take`](SpillStore::take) checks the whole record against the index:
//! file length, magic, header checksum, version, id, payload length and
//! payload checksum. A truncated file, a flipped bit or a foreign file is
//! reported as a [`SpillError`] for which
//! [`is_corruption`](SpillError::is_corruption) holds, and counted in
//! [`corrupt_records`](SpillStore::corrupt_records). A failed write (a full
//! disk) or a directory that cannot be created is a [`SpillError::Io`] and
//! leaves the store as it was, so the caller keeps the state in memory. If
//! the run directory disappears (a temp cleaner), records in files that are
//! not open are lost and reported as I/O errors when taken, and the next
//! file is created after recreating the directory once. No operation
//! retries in a loop: every call does a bounded amount of work and returns.
//!
//! # Reclaiming space
//!
//! A taken record becomes dead space. A file with no live records is
//! deleted (the current file is truncated and reused instead). When more
//! than half of the current file is dead, it is sealed and the next `put`
//! starts a new file; sealed files are deleted once their last record is
//! taken. Nothing is ever compacted or rewritten.
//!
//! # Blocking I/O
//!
//! The store uses blocking `std::fs` calls on the calling thread. Each
//! `put` is one positioned `write` of header and payload together, each
//! `take` two reads (plus an `open` for a sealed file); there is no fsync,
//! so writes land in the page cache. The accumulate stage calls it only
//! when it crosses its memory budget, for a few cold keys at a time, which
//! costs less than shipping state buffers to a blocking thread pool and
//! back. Callers on slow or network storage can wrap calls in
//! `tokio::task::block_in_place` or `spawn_blocking`.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::codec::{RecordLocation, SpillError};

/// The spill format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The first four bytes of every record.
const MAGIC: [u8; 4] = *b"PSPL";

/// Size of a record header in bytes.
const HEADER_LEN: usize = 32;

/// How many run-directory names are tried when one already exists.
const DIR_ATTEMPTS: u32 = 16;

/// Distinguishes the run directories of one process.
static NEXT_RUN: AtomicU64 = AtomicU64::new(0);

/// Spilled records, keyed by opaque `u64` ids, in files under a per-run
/// directory.
///
/// [`new`](Self::new) does no I/O; the directory is created on the first
/// [`put`](Self::put) and removed with its files when the store is dropped.
/// See the [module documentation](self) for the file format and how faults
/// are reported.
///
/// ```
/// use pipeline_runtime::accumulate::spill::SpillStore;
///
/// let mut store = SpillStore::new(None);
/// store.put(7, b"cold state").unwrap();
/// assert_eq!(store.len(), 1);
/// assert_eq!(store.take(7).unwrap(), b"cold state");
/// assert!(store.is_empty());
/// ```
#[derive(Debug)]
pub struct SpillStore {
    /// Where the run directory goes.
    parent: PathBuf,
    /// The run directory, once created.
    dir: Option<PathBuf>,
    /// Live records.
    index: BTreeMap<u64, Slot>,
    /// Files holding live records, and the current file.
    files: BTreeMap<u64, SpillFile>,
    /// The file `put` appends to, if one is open.
    current: Option<u64>,
    /// Number of the next file to create.
    next_file: u64,
    /// Sum of the live records' payload lengths.
    live_payload: u64,
    /// `take` calls that found a corrupt record.
    corrupt: u64,
    /// Reused buffer for header and payload.
    scratch: Vec<u8>,
    /// Simulated disk size: writes past this file offset fail as if the
    /// disk were full.
    #[cfg(test)]
    disk_limit: Option<u64>,
}

/// Where a live record is.
#[derive(Debug, Clone, Copy)]
struct Slot {
    file: u64,
    offset: u64,
    len: u64,
}

/// One spill file and its accounting.
#[derive(Debug)]
struct SpillFile {
    path: PathBuf,
    /// Open for the current file only; sealed files are opened per read.
    handle: Option<File>,
    /// End of the last complete record: where the next one goes.
    end: u64,
    live_records: u64,
    /// Header and payload bytes of the live records.
    live_bytes: u64,
}

impl SpillStore {
    /// Creates a store whose run directory will go under `dir`, or under
    /// [`std::env::temp_dir`] if `None`.
    ///
    /// Does no I/O: nothing is created until the first [`put`](Self::put),
    /// and `dir` must exist by then.
    pub fn new(dir: Option<PathBuf>) -> SpillStore {
        SpillStore {
            parent: dir.unwrap_or_else(std::env::temp_dir),
            dir: None,
            index: BTreeMap::new(),
            files: BTreeMap::new(),
            current: None,
            next_file: 0,
            live_payload: 0,
            corrupt: 0,
            scratch: Vec::new(),
            #[cfg(test)]
            disk_limit: None,
        }
    }

    /// Writes `bytes` as record `id`, replacing any record with that id.
    ///
    /// # Errors
    ///
    /// [`SpillError::Io`] if the run directory or a file cannot be created
    /// or the write fails (a full disk). The store is then unchanged: a
    /// previous record with the same id is still there, and the caller
    /// should keep the state in memory. The next call tries again.
    pub fn put(&mut self, id: u64, bytes: &[u8]) -> Result<(), SpillError> {
        let number = self.open_current()?;
        let len = bytes.len() as u64;

        self.scratch.clear();
        self.scratch.reserve(HEADER_LEN + bytes.len());
        self.scratch.extend_from_slice(&MAGIC);
        self.scratch
            .extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        self.scratch.extend_from_slice(&id.to_le_bytes());
        self.scratch.extend_from_slice(&len.to_le_bytes());
        self.scratch.extend_from_slice(&crc32(bytes).to_le_bytes());
        let header_crc = crc32(&self.scratch[..HEADER_LEN - 4]);
        self.scratch.extend_from_slice(&header_crc.to_le_bytes());
        self.scratch.extend_from_slice(bytes);

        let file = self
            .files
            .get_mut(&number)
            .expect("the current spill file is tracked");
        let handle = file
            .handle
            .as_mut()
            .expect("the current spill file is open");
        #[cfg(test)]
        let written = write_limited(handle, file.end, &self.scratch, self.disk_limit);
        #[cfg(not(test))]
        let written = write_at(handle, file.end, &self.scratch);
        if let Err(source) = written {
            // Drop a partly written record; if that fails too, the next
            // write overwrites it anyway.
            let _ = handle.set_len(file.end);
            return Err(SpillError::io("write to spill file", &file.path, source));
        }

        let slot = Slot {
            file: number,
            offset: file.end,
            len,
        };
        let record = self.scratch.len() as u64;
        file.end += record;
        file.live_records += 1;
        file.live_bytes += record;
        self.live_payload += len;
        if let Some(old) = self.index.insert(id, slot) {
            self.live_payload -= old.len;
            self.release(old);
        }
        Ok(())
    }

    /// Reads record `id` back, checks it, and removes it from the store.
    ///
    /// The record is removed whatever the outcome, so draining the store
    /// with [`ids`](Self::ids) and `take` always ends.
    ///
    /// # Errors
    ///
    /// [`SpillError::Missing`] if there is no such record;
    /// [`SpillError::Io`] if its file cannot be opened or read (the record
    /// is lost); [`SpillError::Truncated`], [`SpillError::BadHeader`] or
    /// [`SpillError::Checksum`] if it is corrupt, which also counts it in
    /// [`corrupt_records`](Self::corrupt_records).
    pub fn take(&mut self, id: u64) -> Result<Vec<u8>, SpillError> {
        let slot = self.index.remove(&id).ok_or(SpillError::Missing { id })?;
        self.live_payload -= slot.len;
        let result = self.read(id, slot);
        self.release(slot);
        if matches!(&result, Err(e) if e.is_corruption()) {
            self.corrupt += 1;
        }
        result
    }

    /// The ids of the records in the store, in ascending order.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.index.keys().copied()
    }

    /// Number of records in the store.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the store holds no records.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Total payload bytes of the records in the store (headers and dead
    /// space not counted).
    pub fn bytes_on_disk(&self) -> u64 {
        self.live_payload
    }

    /// How many [`take`](Self::take) calls found a corrupt record.
    pub fn corrupt_records(&self) -> u64 {
        self.corrupt
    }

    /// The run directory, once the first [`put`](Self::put) has created it.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The current file's number, opening a new file (and creating the run
    /// directory) if there is none.
    fn open_current(&mut self) -> Result<u64, SpillError> {
        if let Some(number) = self.current {
            return Ok(number);
        }
        let dir = match &self.dir {
            Some(dir) => dir.clone(),
            None => {
                let dir = create_run_dir(&self.parent)?;
                self.dir = Some(dir.clone());
                dir
            }
        };
        let number = self.next_file;
        self.next_file += 1;
        let path = dir.join(format!("spill-{number:06}.dat"));
        let handle = match create_file(&path) {
            // The run directory was removed under us: recreate it, once.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create_dir(&dir).and_then(|()| create_file(&path))
            }
            other => other,
        }
        .map_err(|source| SpillError::io("create spill file", &path, source))?;
        self.files.insert(
            number,
            SpillFile {
                path,
                handle: Some(handle),
                end: 0,
                live_records: 0,
                live_bytes: 0,
            },
        );
        self.current = Some(number);
        Ok(number)
    }

    /// Reads and checks the record at `slot`.
    fn read(&mut self, id: u64, slot: Slot) -> Result<Vec<u8>, SpillError> {
        let file = self
            .files
            .get_mut(&slot.file)
            .expect("a live record's file is tracked");
        match &mut file.handle {
            Some(handle) => read_record(handle, &file.path, id, slot),
            None => {
                let mut handle = File::open(&file.path)
                    .map_err(|source| SpillError::io("open spill file", &file.path, source))?;
                read_record(&mut handle, &file.path, id, slot)
            }
        }
    }

    /// Accounts for the record at `slot` becoming dead space, deleting,
    /// truncating or sealing its file as needed.
    fn release(&mut self, slot: Slot) {
        let Some(file) = self.files.get_mut(&slot.file) else {
            return;
        };
        let record = HEADER_LEN as u64 + slot.len;
        file.live_records -= 1;
        file.live_bytes -= record;
        let is_current = self.current == Some(slot.file);
        if file.live_records == 0 {
            if is_current {
                if let Some(handle) = &file.handle
                    && handle.set_len(0).is_ok()
                {
                    file.end = 0;
                    return;
                }
                self.current = None;
            }
            if let Some(file) = self.files.remove(&slot.file) {
                drop(file.handle);
                let _ = fs::remove_file(&file.path);
            }
        } else if is_current && (file.end - file.live_bytes) * 2 > file.end {
            file.handle = None;
            self.current = None;
        }
    }
}

impl Drop for SpillStore {
    fn drop(&mut self) {
        // Close the files before removing them (required on Windows).
        self.files.clear();
        if let Some(dir) = self.dir.take() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// Creates a fresh run directory under `parent`.
fn create_run_dir(parent: &Path) -> Result<PathBuf, SpillError> {
    let pid = std::process::id();
    let mut attempt = 0;
    loop {
        let n = NEXT_RUN.fetch_add(1, Ordering::Relaxed);
        let path = parent.join(format!("pipeline-spill-{pid}-{n}"));
        attempt += 1;
        match create_dir(&path) {
            Ok(()) => return Ok(path),
            // A stale directory of an earlier process with the same pid.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < DIR_ATTEMPTS => {}
            Err(source) => return Err(SpillError::io("create spill directory", path, source)),
        }
    }
}

/// Creates one directory, readable by its owner only on Unix.
fn create_dir(path: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

fn create_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
}

fn write_at(handle: &mut File, offset: u64, bytes: &[u8]) -> io::Result<()> {
    handle.seek(SeekFrom::Start(offset))?;
    handle.write_all(bytes)
}

/// [`write_at`], failing like a full disk past `limit`.
#[cfg(test)]
fn write_limited(
    handle: &mut File,
    offset: u64,
    bytes: &[u8],
    limit: Option<u64>,
) -> io::Result<()> {
    match limit {
        Some(limit) if offset + bytes.len() as u64 > limit => {
            let fits = limit.saturating_sub(offset).min(bytes.len() as u64) as usize;
            write_at(handle, offset, &bytes[..fits])?;
            Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device (simulated)",
            ))
        }
        _ => write_at(handle, offset, bytes),
    }
}

/// Reads the record at `slot` from `handle` and checks it.
fn read_record(handle: &mut File, path: &Path, id: u64, slot: Slot) -> Result<Vec<u8>, SpillError> {
    let at = || RecordLocation {
        id,
        path: path.to_owned(),
        offset: slot.offset,
    };
    let file_len = handle
        .metadata()
        .map_err(|source| SpillError::io("read metadata of spill file", path, source))?
        .len();
    let needed = HEADER_LEN as u64 + slot.len;
    let available = file_len.saturating_sub(slot.offset);
    let truncated = || SpillError::Truncated {
        at: Some(at()),
        needed,
        available,
    };
    if available < needed {
        return Err(truncated());
    }
    let read_err = |source: io::Error| {
        if source.kind() == io::ErrorKind::UnexpectedEof {
            truncated()
        } else {
            SpillError::io("read from spill file", path, source)
        }
    };
    handle
        .seek(SeekFrom::Start(slot.offset))
        .map_err(read_err)?;
    let mut header = [0u8; HEADER_LEN];
    handle.read_exact(&mut header).map_err(read_err)?;

    let field = |range: std::ops::Range<usize>| &header[range];
    let u32_at = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().expect("8 bytes"));
    let bad_header = |reason: String| SpillError::BadHeader { at: at(), reason };

    if field(0..4) != MAGIC {
        return Err(bad_header(format!(
            "magic bytes are {:02x?}, expected {:02x?} (\"PSPL\")",
            field(0..4),
            MAGIC
        )));
    }
    let stored = u32_at(28);
    let computed = crc32(&header[..HEADER_LEN - 4]);
    if stored != computed {
        return Err(SpillError::Checksum {
            at: at(),
            part: "header",
            stored,
            computed,
        });
    }
    let version = u32_at(4);
    if version != FORMAT_VERSION {
        return Err(bad_header(format!(
            "format version {version} is not supported (this build reads version {FORMAT_VERSION})"
        )));
    }
    let header_id = u64_at(8);
    if header_id != id {
        return Err(bad_header(format!("the header names record {header_id}")));
    }
    let header_len = u64_at(16);
    if header_len != slot.len {
        return Err(bad_header(format!(
            "the header says {header_len} payload bytes, the index says {}",
            slot.len
        )));
    }

    // `slot.len` is the length this store wrote, so it fits in memory.
    let mut payload = vec![0; slot.len as usize];
    handle.read_exact(&mut payload).map_err(read_err)?;
    let stored = u32_at(24);
    let computed = crc32(&payload);
    if stored != computed {
        return Err(SpillError::Checksum {
            at: at(),
            part: "payload",
            stored,
            computed,
        });
    }
    Ok(payload)
}

/// CRC-32 lookup tables (reflected polynomial `0xEDB88320`) for
/// slicing-by-8.
static CRC_TABLES: [[u32; 256]; 8] = crc_tables();

const fn crc_tables() -> [[u32; 256]; 8] {
    let mut tables = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                0xEDB8_8320 ^ (crc >> 1)
            } else {
                crc >> 1
            };
            bit += 1;
        }
        tables[0][i] = crc;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut t = 1;
        while t < 8 {
            let prev = tables[t - 1][i];
            tables[t][i] = (prev >> 8) ^ tables[0][(prev & 0xff) as usize];
            t += 1;
        }
        i += 1;
    }
    tables
}

/// The CRC-32 of `data`, as computed by zlib, gzip and PNG.
fn crc32(data: &[u8]) -> u32 {
    let t = &CRC_TABLES;
    let mut crc = !0u32;
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let lo = crc ^ u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let hi = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
        crc = t[7][(lo & 0xff) as usize]
            ^ t[6][((lo >> 8) & 0xff) as usize]
            ^ t[5][((lo >> 16) & 0xff) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xff) as usize]
            ^ t[2][((hi >> 8) & 0xff) as usize]
            ^ t[1][((hi >> 16) & 0xff) as usize]
            ^ t[0][(hi >> 24) as usize];
    }
    for &byte in chunks.remainder() {
        crc = t[0][((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory for one test, removed when dropped.
    struct TestDir(PathBuf);

    impl TestDir {
        fn new(name: &str) -> TestDir {
            let path = std::env::temp_dir()
                .join(format!("pipeline-spill-test-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            TestDir(path)
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn payload(id: u64) -> Vec<u8> {
        let len = (id * 37 % 300) as usize;
        (0..len).map(|i| (id as usize * 31 + i) as u8).collect()
    }

    fn spill_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    }

    /// Flips one bit of the byte at `offset` in `path`.
    fn flip_bit(path: &Path, offset: u64) {
        let mut bytes = fs::read(path).unwrap();
        bytes[offset as usize] ^= 0x10;
        fs::write(path, bytes).unwrap();
    }

    fn first_file(store: &SpillStore) -> PathBuf {
        store.dir().unwrap().join("spill-000000.dat")
    }

    #[test]
    fn crc32_matches_the_standard_check_values() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
        // Slicing-by-8 agrees with the bytewise loop at every alignment.
        let data: Vec<u8> = (0..100u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in 0..data.len() {
            let mut crc = !0u32;
            for &b in &data[..len] {
                crc = CRC_TABLES[0][((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
            }
            assert_eq!(crc32(&data[..len]), !crc, "length {len}");
        }
    }

    #[test]
    fn new_does_no_io() {
        let store = SpillStore::new(Some(PathBuf::from("/nonexistent/pipeline/spill")));
        assert_eq!(store.dir(), None);
        assert!(store.is_empty());
        assert_eq!(store.bytes_on_disk(), 0);
    }

    #[test]
    fn many_records_round_trip_and_space_is_reclaimed() {
        let base = TestDir::new("many");
        let mut store = SpillStore::new(Some(base.0.clone()));
        let mut expected_bytes = 0;
        for id in 0..2000 {
            store.put(id, &payload(id)).unwrap();
            expected_bytes += payload(id).len() as u64;
        }
        assert_eq!(store.len(), 2000);
        assert_eq!(store.bytes_on_disk(), expected_bytes);
        assert_eq!(store.ids().count(), 2000);
        assert!(store.ids().eq(0..2000));

        // Take every other record, interleaved with new puts.
        for id in (0..2000).step_by(2) {
            assert_eq!(store.take(id).unwrap(), payload(id), "record {id}");
            store.put(10_000 + id, &payload(10_000 + id)).unwrap();
        }
        // Drain the rest, in the order `ids` gives.
        let rest: Vec<u64> = store.ids().collect();
        assert_eq!(rest.len(), 2000);
        for id in rest {
            assert_eq!(store.take(id).unwrap(), payload(id), "record {id}");
        }
        assert!(store.is_empty());
        assert_eq!(store.bytes_on_disk(), 0);
        assert_eq!(store.corrupt_records(), 0);
        // At most the (truncated, reusable) current file is left.
        let files = spill_files(store.dir().unwrap());
        assert!(files.len() <= 1, "{files:?}");
        for file in files {
            assert_eq!(fs::metadata(file).unwrap().len(), 0);
        }
    }

    #[test]
    fn the_current_file_is_sealed_when_mostly_dead_and_empty_files_deleted() {
        let base = TestDir::new("seal");
        let mut store = SpillStore::new(Some(base.0.clone()));
        for id in 0..10 {
            store.put(id, &[id as u8; 100]).unwrap();
        }
        for id in 0..6 {
            store.take(id).unwrap();
        }
        // 6 of 10 equal records dead: the next put starts a second file.
        store.put(10, b"next").unwrap();
        let dir = store.dir().unwrap().to_owned();
        assert_eq!(spill_files(&dir).len(), 2);
        for id in 6..10 {
            assert_eq!(store.take(id).unwrap(), [id as u8; 100]);
        }
        // The first file had no live records left and is gone.
        assert_eq!(spill_files(&dir), [dir.join("spill-000001.dat")]);
        assert_eq!(store.take(10).unwrap(), b"next");
    }

    #[test]
    fn put_replaces_a_record_with_the_same_id() {
        let mut store = SpillStore::new(None);
        store.put(1, b"old").unwrap();
        store.put(1, b"newer").unwrap();
        assert_eq!(store.len(), 1);
        assert_eq!(store.bytes_on_disk(), 5);
        assert_eq!(store.take(1).unwrap(), b"newer");
        assert!(matches!(store.take(1), Err(SpillError::Missing { id: 1 })));
        assert_eq!(store.corrupt_records(), 0);
    }

    #[test]
    fn empty_payloads_round_trip() {
        let mut store = SpillStore::new(None);
        store.put(0, b"").unwrap();
        store.put(u64::MAX, b"").unwrap();
        assert_eq!(store.take(u64::MAX).unwrap(), b"");
        assert_eq!(store.take(0).unwrap(), b"");
    }

    #[test]
    fn a_flipped_payload_bit_is_a_checksum_error() {
        let mut store = SpillStore::new(None);
        store.put(1, b"first record").unwrap();
        store.put(2, b"second record").unwrap();
        let path = first_file(&store);
        flip_bit(&path, HEADER_LEN as u64 + 3);
        let err = store.take(1).unwrap_err();
        assert!(
            matches!(&err, SpillError::Checksum { part: "payload", at, .. } if at.id == 1 && at.offset == 0),
            "{err}"
        );
        assert!(err.to_string().contains("spill record 1"), "{err}");
        assert!(
            err.to_string().contains("payload checksum mismatch"),
            "{err}"
        );
        assert_eq!(store.corrupt_records(), 1);
        // The record is gone; the other one is intact.
        assert!(matches!(store.take(1), Err(SpillError::Missing { id: 1 })));
        assert_eq!(store.take(2).unwrap(), b"second record");
        assert_eq!(store.corrupt_records(), 1);
    }

    #[test]
    fn a_flipped_header_bit_is_detected() {
        let mut store = SpillStore::new(None);
        for id in 1..=3 {
            store.put(id, b"abc").unwrap();
        }
        let record = (HEADER_LEN + 3) as u64;
        let path = first_file(&store);
        flip_bit(&path, 9); // record 1's id
        flip_bit(&path, record + 1); // record 2's magic
        flip_bit(&path, 2 * record + 4); // record 3's version
        let err = store.take(1).unwrap_err();
        assert!(
            matches!(&err, SpillError::Checksum { part: "header", .. }),
            "{err}"
        );
        let err = store.take(2).unwrap_err();
        assert!(matches!(&err, SpillError::BadHeader { .. }), "{err}");
        assert!(err.to_string().contains("magic bytes"), "{err}");
        let err = store.take(3).unwrap_err();
        assert!(
            matches!(&err, SpillError::Checksum { part: "header", .. }),
            "{err}"
        );
        assert_eq!(store.corrupt_records(), 3);
        assert!(store.is_empty());
    }

    #[test]
    fn a_record_from_a_newer_format_is_rejected() {
        let mut store = SpillStore::new(None);
        store.put(5, b"future").unwrap();
        let path = first_file(&store);
        let mut bytes = fs::read(&path).unwrap();
        bytes[4..8].copy_from_slice(&2u32.to_le_bytes());
        let crc = crc32(&bytes[..HEADER_LEN - 4]);
        bytes[28..32].copy_from_slice(&crc.to_le_bytes());
        fs::write(&path, bytes).unwrap();
        let err = store.take(5).unwrap_err();
        assert!(
            err.to_string()
                .contains("format version 2 is not supported"),
            "{err}"
        );
        assert_eq!(store.corrupt_records(), 1);
    }

    #[test]
    fn a_truncated_file_is_detected() {
        let mut store = SpillStore::new(None);
        store.put(1, &[1; 50]).unwrap();
        store.put(2, &[2; 50]).unwrap();
        store.put(3, &[3; 50]).unwrap();
        let record = (HEADER_LEN + 50) as u64;
        let path = first_file(&store);
        // Cut record 3 in its payload.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(2 * record + 40)
            .unwrap();
        let err = store.take(3).unwrap_err();
        assert!(
            matches!(&err, SpillError::Truncated { at: Some(at), needed: 82, available: 40 } if at.id == 3),
            "{err}"
        );
        assert!(err.to_string().contains("is truncated"), "{err}");
        // Cut inside record 2's header.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(record + 10)
            .unwrap();
        let err = store.take(2).unwrap_err();
        assert!(
            matches!(&err, SpillError::Truncated { available: 10, .. }),
            "{err}"
        );
        assert_eq!(store.take(1).unwrap(), [1; 50]);
        assert_eq!(store.corrupt_records(), 2);
        // The store still works.
        store.put(4, b"after").unwrap();
        assert_eq!(store.take(4).unwrap(), b"after");
    }

    #[test]
    fn a_full_disk_fails_the_put_and_keeps_the_store_consistent() {
        let mut store = SpillStore::new(None);
        store.put(1, &[1; 100]).unwrap();
        store.put(2, b"old two").unwrap();
        let end = (2 * HEADER_LEN + 107) as u64;
        store.disk_limit = Some(end + 50);
        let err = store.put(3, &[3; 100]).unwrap_err();
        assert!(
            matches!(&err, SpillError::Io { op: "write to spill file", source, .. } if source.kind() == io::ErrorKind::StorageFull),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("spill I/O error: cannot write to spill file `"),
            "{err}"
        );
        // Replacing a record fails too, and keeps the old one.
        assert!(store.put(2, &[9; 100]).is_err());
        assert_eq!(store.len(), 2);
        assert!(store.ids().eq([1, 2]));
        assert_eq!(store.bytes_on_disk(), 107);
        // The partial record was cut off.
        assert_eq!(fs::metadata(first_file(&store)).unwrap().len(), end);
        // Space frees up: the next put lands where the failed one started.
        store.disk_limit = None;
        store.put(3, &[3; 100]).unwrap();
        assert_eq!(store.take(2).unwrap(), b"old two");
        assert_eq!(store.take(3).unwrap(), [3; 100]);
        assert_eq!(store.take(1).unwrap(), [1; 100]);
        assert_eq!(store.corrupt_records(), 0);
    }

    #[test]
    fn a_read_only_directory_fails_the_put() {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let base = TestDir::new("read-only");
            fs::set_permissions(&base.0, fs::Permissions::from_mode(0o500)).unwrap();
            if fs::write(base.0.join("probe"), b"").is_ok() {
                // Running as root: permissions do not stop writes, so this
                // fault cannot be produced here; the simulated full disk
                // and the uncreatable directory cover the error paths.
                eprintln!("skipped: the process can write to read-only directories");
                fs::set_permissions(&base.0, fs::Permissions::from_mode(0o700)).unwrap();
                return;
            }
            let mut store = SpillStore::new(Some(base.0.clone()));
            let err = store.put(1, b"x").unwrap_err();
            assert!(
                matches!(&err, SpillError::Io { op: "create spill directory", source, .. } if source.kind() == io::ErrorKind::PermissionDenied),
                "{err}"
            );
            assert!(store.is_empty());
            fs::set_permissions(&base.0, fs::Permissions::from_mode(0o700)).unwrap();
        }
    }

    #[test]
    fn a_directory_that_cannot_be_created_fails_every_put() {
        let base = TestDir::new("not-a-dir");
        let file = base.0.join("a-file");
        fs::write(&file, b"not a directory").unwrap();
        let mut store = SpillStore::new(Some(file.clone()));
        for attempt in 0..3 {
            let err = store.put(attempt, b"x").unwrap_err();
            assert!(
                matches!(
                    &err,
                    SpillError::Io {
                        op: "create spill directory",
                        ..
                    }
                ),
                "{err}"
            );
            let message = err.to_string();
            assert!(
                message.contains("cannot create spill directory"),
                "{message}"
            );
            assert!(message.contains("a-file"), "{message}");
            assert!(!err.is_corruption());
        }
        assert!(store.is_empty());
        assert_eq!(store.dir(), None);
        assert!(matches!(store.take(0), Err(SpillError::Missing { id: 0 })));

        let mut store = SpillStore::new(Some(base.0.join("does-not-exist")));
        let err = store.put(1, b"x").unwrap_err();
        assert!(
            matches!(&err, SpillError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound),
            "{err}"
        );
        assert!(!base.0.join("does-not-exist").exists());
    }

    #[test]
    fn a_missing_run_directory_is_reported_not_fatal() {
        let base = TestDir::new("missing");
        let mut store = SpillStore::new(Some(base.0.clone()));
        for id in 0..4 {
            store.put(id, &[id as u8; 10]).unwrap();
        }
        for id in 0..3 {
            store.take(id).unwrap();
        }
        // The first file is sealed now; record 3 lives there alone.
        store.put(4, b"in the second file").unwrap();
        let dir = store.dir().unwrap().to_owned();
        fs::remove_dir_all(&dir).unwrap();

        let err = store.take(3).unwrap_err();
        assert!(
            matches!(&err, SpillError::Io { op: "open spill file", source, .. } if source.kind() == io::ErrorKind::NotFound),
            "{err}"
        );
        assert_eq!(store.corrupt_records(), 0);
        // The open current file still works...
        store.put(5, b"five").unwrap();
        assert_eq!(store.take(5).unwrap(), b"five");
        assert_eq!(store.take(4).unwrap(), b"in the second file");
        for id in 6..9 {
            store.put(id, b"x").unwrap();
        }
        store.take(6).unwrap();
        store.take(7).unwrap();
        // ...and once it is sealed, a new file recreates the directory.
        store.put(9, b"nine").unwrap();
        assert!(dir.is_dir());
        assert_eq!(store.take(9).unwrap(), b"nine");
        // Record 8 was in the sealed file, lost with the old directory.
        let err = store.take(8).unwrap_err();
        assert!(
            matches!(
                &err,
                SpillError::Io {
                    op: "open spill file",
                    ..
                }
            ),
            "{err}"
        );
        assert!(store.is_empty());

        // A run directory replaced by a file cannot be recreated: put
        // reports it, every time.
        let mut store = SpillStore::new(Some(base.0.clone()));
        store.put(1, b"x").unwrap();
        let dir = store.dir().unwrap().to_owned();
        fs::remove_dir_all(&dir).unwrap();
        fs::write(&dir, b"in the way").unwrap();
        // The current file is still open: it keeps working until sealed.
        store.put(2, &[2; 100]).unwrap();
        assert_eq!(store.take(2).unwrap(), [2; 100]);
        let err = store.take(1).unwrap_err();
        assert!(
            matches!(
                &err,
                SpillError::Io {
                    op: "open spill file",
                    ..
                }
            ),
            "{err}"
        );
        for id in 10..13 {
            let err = store.put(id, b"v").unwrap_err();
            assert!(
                matches!(
                    &err,
                    SpillError::Io {
                        op: "create spill file",
                        ..
                    }
                ),
                "{err}"
            );
        }
        assert!(store.is_empty());
        assert_eq!(store.corrupt_records(), 0);
        drop(store);
        fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn the_run_directory_is_removed_on_drop() {
        let mut store = SpillStore::new(None);
        store.put(1, b"x").unwrap();
        store.put(2, b"y").unwrap();
        let dir = store.dir().unwrap().to_owned();
        assert!(dir.is_dir());
        assert!(dir.starts_with(std::env::temp_dir()));
        let name = dir.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with(&format!("pipeline-spill-{}-", std::process::id())),
            "{name}"
        );
        drop(store);
        assert!(!dir.exists());
    }

    #[test]
    fn a_configured_directory_is_honoured_and_kept() {
        let base = TestDir::new("configured");
        let mut first = SpillStore::new(Some(base.0.clone()));
        let mut second = SpillStore::new(Some(base.0.clone()));
        first.put(1, b"x").unwrap();
        second.put(1, b"y").unwrap();
        let (a, b) = (
            first.dir().unwrap().to_owned(),
            second.dir().unwrap().to_owned(),
        );
        assert_eq!(a.parent(), Some(base.0.as_path()));
        assert_eq!(b.parent(), Some(base.0.as_path()));
        assert_ne!(a, b, "each store gets its own run directory");
        assert_eq!(spill_files(&a), [a.join("spill-000000.dat")]);
        drop(first);
        drop(second);
        assert!(!a.exists() && !b.exists());
        assert!(base.0.is_dir(), "the configured directory itself stays");
    }

    #[test]
    fn spilled_values_round_trip_through_the_codec() {
        use super::super::codec::{from_bytes, to_bytes};
        use crate::batch::Batch;
        use tokio::time::Instant;

        let now = Instant::now();
        let batch = Batch::new(
            "user-1".to_owned(),
            vec![(1u32, Some('a')), (2, None)],
            now,
            now + std::time::Duration::from_millis(250),
            16,
        );
        let mut store = SpillStore::new(None);
        store.put(99, &to_bytes(&batch)).unwrap();
        let back: Batch<(u32, Option<char>), String> =
            from_bytes(&store.take(99).unwrap()).unwrap();
        assert_eq!(back, batch);
    }
}
