use std::fmt::Debug;

use proptest::prelude::*;

use super::*;

/// Round-trips `value`, checks determinism and the declared minimum
/// length, and that every strict prefix of the encoding fails to decode.
fn round_trip<T: Spill + PartialEq + Debug>(value: T) -> Vec<u8> {
    let bytes = to_bytes(&value);
    assert_eq!(bytes, to_bytes(&value), "encoding is not deterministic");
    assert!(
        bytes.len() >= T::MIN_ENCODED_LEN,
        "{} bytes is less than MIN_ENCODED_LEN {}",
        bytes.len(),
        T::MIN_ENCODED_LEN
    );
    let back: T = from_bytes(&bytes).expect("decodes");
    assert_eq!(back, value);
    for cut in 0..bytes.len() {
        let err = from_bytes::<T>(&bytes[..cut]).expect_err("a prefix must not decode");
        assert!(err.is_corruption(), "{err}");
    }
    bytes
}

#[test]
fn integers_round_trip_little_endian() {
    assert_eq!(round_trip(0x0102_0304u32), [4, 3, 2, 1]);
    assert_eq!(round_trip(-2i16), [0xfe, 0xff]);
    round_trip(u8::MAX);
    round_trip(u16::MAX);
    round_trip(u64::MAX);
    round_trip(u128::MAX);
    round_trip(i8::MIN);
    round_trip(i32::MIN);
    round_trip(i64::MIN);
    round_trip(i128::MIN);
    assert_eq!(round_trip(usize::MAX).len(), 8);
    assert_eq!(round_trip(isize::MIN).len(), 8);
}

#[test]
fn scalars_round_trip() {
    assert_eq!(round_trip(true), [1]);
    assert_eq!(round_trip(false), [0]);
    round_trip('a');
    round_trip('\u{10ffff}');
    round_trip(1.5f32);
    round_trip(-0.0f64);
    round_trip(f64::INFINITY);
    assert_eq!(round_trip(()), Vec::<u8>::new());
    for nan in [f32::NAN, f32::from_bits(0x7fc0_1234)] {
        let back: f32 = from_bytes(&to_bytes(&nan)).unwrap();
        assert_eq!(back.to_bits(), nan.to_bits());
    }
    let nan = f64::from_bits(0xfff8_0000_0000_0042);
    let back: f64 = from_bytes(&to_bytes(&nan)).unwrap();
    assert_eq!(back.to_bits(), nan.to_bits());
}

#[test]
fn containers_round_trip() {
    assert_eq!(
        round_trip(String::from("hé")),
        [3, 0, 0, 0, 0, 0, 0, 0, b'h', 0xc3, 0xa9]
    );
    round_trip(String::new());
    round_trip(vec![1u16, 2, 3]);
    round_trip(Vec::<String>::new());
    round_trip(vec![
        vec!["a".to_owned()],
        vec![],
        vec!["b".into(), "c".into()],
    ]);
    assert_eq!(round_trip(None::<u32>), [0]);
    assert_eq!(round_trip(Some(7u8)), [1, 7]);
    round_trip(Some(Some(String::from("x"))));
    round_trip(Box::new(42u64));
    round_trip(Box::new(vec![Box::new('z')]));
    round_trip(vec![(); 1000]);
}

#[test]
fn tuples_round_trip() {
    round_trip((1u8,));
    round_trip((1u8, String::from("two")));
    round_trip((1u8, -2i64, Some('3')));
    round_trip((1u8, -2i64, Some('3'), vec![4.0f64]));
    assert_eq!(<(u8, u32, (), char)>::MIN_ENCODED_LEN, 9);
}

#[test]
fn duration_round_trips() {
    round_trip(Duration::ZERO);
    round_trip(Duration::new(5, 999_999_999));
    round_trip(Duration::MAX);
}

#[test]
fn batch_round_trips_exactly() {
    let base = instant_base();
    let before = base
        .checked_sub(Duration::from_millis(1500))
        .unwrap_or(base);
    let after = base + Duration::new(3, 7);
    round_trip(Batch::new((), vec![1u32, 2, 3], before, after, 12));
    round_trip(Batch::new(
        "key".to_owned(),
        vec!["a".to_owned()],
        after,
        after,
        1,
    ));
    // An inverted window survives as it was.
    round_trip(Batch::new(7u64, Vec::<u8>::new(), after, before, 0));
    round_trip(Batch::new(
        Some(1u8),
        vec![(1u8, 'x')],
        Instant::now(),
        Instant::now(),
        2,
    ));
}

#[tokio::test(start_paused = true)]
async fn batch_round_trips_under_paused_time() {
    let start = Instant::now();
    tokio::time::advance(Duration::from_secs(10)).await;
    let end = Instant::now();
    let batch = Batch::new(1u8, vec![1u8], start, end, 1);
    let back: Batch<u8, u8> = from_bytes(&to_bytes(&batch)).unwrap();
    assert_eq!(back, batch);
    assert_eq!(back.window_duration(), Duration::from_secs(10));
}

#[test]
fn invalid_bytes_are_rejected_with_clear_errors() {
    let err = from_bytes::<bool>(&[2]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "spilled data is corrupt: invalid `bool`: byte 0x02 is neither 0 nor 1"
    );
    let err = from_bytes::<char>(&0xd800u32.to_le_bytes()).unwrap_err();
    assert!(
        err.to_string().contains("not a Unicode scalar value"),
        "{err}"
    );
    let err = from_bytes::<Option<u8>>(&[9, 0]).unwrap_err();
    assert!(
        matches!(err, SpillError::InvalidData { what: "Option", .. }),
        "{err}"
    );
    let mut bad_utf8 = to_bytes(&2u64);
    bad_utf8.extend_from_slice(&[0xff, 0xfe]);
    let err = from_bytes::<String>(&bad_utf8).unwrap_err();
    assert!(
        matches!(err, SpillError::InvalidData { what: "String", .. }),
        "{err}"
    );
    let mut bad_nanos = to_bytes(&1u64);
    bad_nanos.extend_from_slice(&1_000_000_000u32.to_le_bytes());
    assert!(from_bytes::<Duration>(&bad_nanos).is_err());
    let err = from_bytes::<u32>(&[1, 2, 3, 4, 5]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "spilled data is corrupt: invalid `u32`: 1 unexpected bytes after the value"
    );
    let err = from_bytes::<u64>(&[1, 2, 3]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "spilled data is truncated: 8 more bytes needed, 3 left"
    );
}

#[test]
fn huge_lengths_fail_before_allocating() {
    let huge = to_bytes(&u64::MAX);
    let err = from_bytes::<String>(&huge).unwrap_err();
    assert!(
        matches!(
            err,
            SpillError::LengthOutOfBounds {
                what: "String",
                len: u64::MAX,
                max: 0
            }
        ),
        "{err}"
    );
    let err = from_bytes::<Vec<u64>>(&[huge.as_slice(), &[0; 16]].concat()).unwrap_err();
    assert!(
        matches!(
            err,
            SpillError::LengthOutOfBounds {
                what: "Vec",
                max: 2,
                ..
            }
        ),
        "{err}"
    );
    // Zero-sized elements: bounded by MAX_ZERO_SIZED_ELEMENTS, not by
    // the (absent) input.
    let err = from_bytes::<Vec<()>>(&huge).unwrap_err();
    assert!(
        matches!(
            err,
            SpillError::LengthOutOfBounds {
                max: MAX_ZERO_SIZED_ELEMENTS,
                ..
            }
        ),
        "{err}"
    );
    let just_over = to_bytes(&(MAX_ZERO_SIZED_ELEMENTS + 1));
    assert!(from_bytes::<Vec<()>>(&just_over).is_err());
}

#[test]
fn zero_progress_elements_are_capped_even_without_min_len() {
    /// Encodes to nothing but does not declare it.
    #[derive(Debug, PartialEq)]
    struct Nothing;
    impl Spill for Nothing {
        fn encode(&self, _: &mut Vec<u8>) {}
        fn decode(_: &mut &[u8]) -> Result<Self, SpillError> {
            Ok(Nothing)
        }
    }
    let mut bytes = to_bytes(&(MAX_ZERO_SIZED_ELEMENTS + 4));
    bytes.extend_from_slice(&[0; 4]);
    let err = Vec::<Nothing>::decode(&mut bytes.as_slice()).unwrap_err();
    assert!(
        matches!(
            err,
            SpillError::LengthOutOfBounds {
                max: MAX_ZERO_SIZED_ELEMENTS,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn errors_display_their_context() {
    let at = RecordLocation {
        id: 42,
        path: PathBuf::from("/tmp/x/spill-000000.dat"),
        offset: 64,
    };
    let err = SpillError::Checksum {
        at: at.clone(),
        part: "payload",
        stored: 1,
        computed: 2,
    };
    assert_eq!(
        err.to_string(),
        "spill record 42 (`/tmp/x/spill-000000.dat`, offset 64) is corrupt: payload checksum mismatch (stored 0x00000001, computed 0x00000002)"
    );
    assert!(err.is_corruption());
    let err = SpillError::io(
        "write to",
        "/nope",
        io::Error::from(io::ErrorKind::StorageFull),
    );
    assert!(
        err.to_string()
            .starts_with("spill I/O error: cannot write to `/nope`: "),
        "{err}"
    );
    assert!(err.source().is_some());
    assert!(!err.is_corruption());
    let err = SpillError::Missing { id: 3 };
    assert_eq!(err.to_string(), "spill record 3 is not in the spill store");
    assert!(!err.is_corruption());
}

type Nested = Vec<(u8, String, Option<Vec<char>>, Box<(bool, f32)>)>;

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = from_bytes::<Nested>(&bytes);
        let _ = from_bytes::<Batch<(u16, Duration), String>>(&bytes);
        let _ = from_bytes::<Vec<Vec<()>>>(bytes.get(..24).unwrap_or(&bytes));
        let _ = from_bytes::<(Option<usize>, isize, String, Vec<i128>)>(&bytes);
    }

    #[test]
    fn arbitrary_values_round_trip(
        value in proptest::collection::vec(
            (any::<u8>(), ".{0,8}", proptest::option::of(proptest::collection::vec(any::<char>(), 0..4)), any::<bool>()),
            0..16,
        ),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = to_bytes(&value);
        let back: Vec<(u8, String, Option<Vec<char>>, bool)> = from_bytes(&bytes).unwrap();
        prop_assert_eq!(&back, &value);
        let cut = cut.index(bytes.len());
        prop_assert!(from_bytes::<Vec<(u8, String, Option<Vec<char>>, bool)>>(&bytes[..cut]).is_err());
    }

    #[test]
    fn flipped_bits_never_panic(value in proptest::collection::vec(".{0,8}", 0..8), bit in any::<prop::sample::Index>()) {
        let mut bytes = to_bytes(&(value, 5u32));
        let bit = bit.index(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        let _ = from_bytes::<(Vec<String>, u32)>(&bytes);
    }
}
