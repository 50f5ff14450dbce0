//! `frames` and `lines` on random bytes read in random pieces, against a
//! model: the proptest twin of the `framing` fuzz target, which shares the
//! harness and the model (`fuzz/common/framing.rs`, which says what is
//! checked). `PROPTEST_CASES` overrides the number of cases (512 by
//! default).

#[path = "../../fuzz/common/framing.rs"]
mod framing;

use framing::{FramingCase, Got, check, run};
use proptest::prelude::*;
use proptest::sample::select;

/// Bytes that make delimiters, line endings, `\r`s and broken UTF-8 likely.
const ALPHABET: &[u8] = b"ab\n\r--\n\xc3\xa9\xff";

fn delimiter() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        // Overlaps itself: `aaab` holds `aab` at 1, not at 0.
        Just(b"aab".to_vec()),
        Just(b"--".to_vec()),
        prop::collection::vec(select(ALPHABET), 1..=3),
    ]
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::collection::vec(select(ALPHABET), 0..200),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

fn case() -> impl Strategy<Value = FramingCase> {
    (
        any::<bool>(),
        delimiter(),
        prop_oneof![3 => 0usize..12, 1 => 0usize..300],
        data(),
        prop::collection::vec(1usize..40, 1..6),
        prop::collection::vec(any::<bool>(), 0..4),
        prop::option::weighted(0.2, 0usize..250),
        1usize..8,
    )
        .prop_map(
            |(lines, delimiter, max, data, cuts, pending, fail_at, chunk)| FramingCase {
                lines,
                delimiter,
                max,
                data,
                cuts,
                pending,
                fail_at,
                chunk,
            },
        )
}

/// 512 cases unless `PROPTEST_CASES` says otherwise; no regression files
/// (a failure prints the case, which belongs in a `#[test]` below).
fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 512;
    }
    config.failure_persistence = None;
    config
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn frames_and_lines_match_the_model_however_the_input_is_split(case in case()) {
        check(&case).map_err(TestCaseError::fail)?;
    }
}

fn frames_case(delimiter: &[u8], max: usize, data: &[u8], cuts: &[usize]) -> FramingCase {
    FramingCase {
        lines: false,
        delimiter: delimiter.to_vec(),
        max,
        data: data.to_vec(),
        cuts: cuts.to_vec(),
        pending: vec![true, false],
        fail_at: None,
        chunk: 2,
    }
}

fn frame(bytes: &[u8]) -> Got {
    Got::Frame(bytes.to_vec())
}

/// The harness and the model agree with what `frames` is documented to
/// do, so that a check that passes means something.
#[test]
fn the_model_is_the_documented_behaviour() {
    let case = frames_case(
        b"\r\n",
        16,
        b"HELO\r\nMAIL FROM:<a@very.long.domain>\r\nQUIT",
        &[3],
    );
    assert_eq!(
        run(&case),
        [
            frame(b"HELO"),
            Got::TooLong {
                number: 2,
                offset: 6
            },
            frame(b"QUIT")
        ]
    );
    check(&case).unwrap();
    // A delimiter that overlaps itself, cut inside it.
    let case = frames_case(b"aab", 10, b"aaabxaab", &[1]);
    assert_eq!(run(&case), [frame(b"a"), frame(b"x")]);
    check(&case).unwrap();
}

#[test]
fn lines_strip_one_carriage_return_and_report_bad_utf8() {
    let case = FramingCase {
        lines: true,
        delimiter: Vec::new(),
        max: 3,
        data: b"ab\r\n\xff\n\r\r\nabcd\nabc\r".to_vec(),
        cuts: vec![1, 2],
        pending: vec![false, true],
        fail_at: None,
        chunk: 1,
    };
    assert_eq!(
        run(&case),
        [
            frame(b"ab"),
            Got::InvalidUtf8 {
                number: 2,
                bytes: b"\xff".to_vec()
            },
            frame(b"\r"),
            Got::TooLong {
                number: 4,
                offset: 0
            },
            frame(b"abc"),
        ]
    );
    check(&case).unwrap();
}

#[test]
fn a_read_error_ends_the_source_after_the_complete_frames() {
    let case = FramingCase {
        fail_at: Some(7),
        ..frames_case(b"\n", 10, b"one\ntwo\nthree\n", &[2])
    };
    assert_eq!(run(&case), [frame(b"one"), Got::Io]);
    check(&case).unwrap();
}

/// A check that fails says so: the model is not vacuous.
#[test]
fn a_wrong_model_is_caught() {
    let case = frames_case(b"\n", 2, b"abc\nd", &[1]);
    let got = run(&case);
    assert_eq!(
        got,
        [
            Got::TooLong {
                number: 1,
                offset: 0
            },
            frame(b"d")
        ]
    );
    assert_ne!(got, [frame(b"abc"), frame(b"d")]);
}
