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
mod tests;
