use super::*;

/// A directory for one test, removed when dropped.
struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> TestDir {
        let path =
            std::env::temp_dir().join(format!("pipeline-spill-test-{}-{name}", std::process::id()));
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
    let back: Batch<(u32, Option<char>), String> = from_bytes(&store.take(99).unwrap()).unwrap();
    assert_eq!(back, batch);
}
