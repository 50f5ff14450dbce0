//! `frames` and `lines` on arbitrary bytes, read in arbitrary pieces,
//! against the model in `common/framing.rs` (the same checks as
//! `pipeline-runtime/tests/io_framing_props.rs`).

#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

#[path = "../common/framing.rs"]
mod framing;

use framing::FramingCase;

/// Bytes that make delimiters, line endings, `\r`s and broken UTF-8 likely.
const ALPHABET: &[u8] = b"ab\n\r--\n\xc3\xa9\xff";

fn case(mut u: Unstructured<'_>) -> Result<FramingCase> {
    let flags: u8 = u.arbitrary()?;
    let delimiter = match (flags >> 2) & 3 {
        0 => b"\n".to_vec(),
        1 => b"\r\n".to_vec(),
        2 => b"aab".to_vec(),
        _ => {
            let n = u.int_in_range(1..=4)?;
            u.bytes(n)?.to_vec()
        }
    };
    let max = if flags & 0x40 != 0 {
        u.int_in_range(0..=4096)?
    } else {
        u.int_in_range(0..=12)?
    };
    let chunk = u.int_in_range(1..=8)?;
    let fail_at = if flags & 0x10 != 0 {
        Some(u.int_in_range(0..=512)?)
    } else {
        None
    };
    let cuts = (0..u.int_in_range(1..=6)?)
        .map(|_| u.int_in_range(1..=40))
        .collect::<Result<Vec<usize>>>()?;
    let pending = (0..u.int_in_range(0..=3)?)
        .map(|_| u.arbitrary())
        .collect::<Result<Vec<bool>>>()?;
    let rest = u.take_rest();
    let data = if flags & 2 != 0 {
        rest.iter()
            .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()])
            .collect()
    } else {
        rest.to_vec()
    };
    Ok(FramingCase {
        lines: flags & 1 != 0,
        delimiter,
        max,
        data,
        cuts,
        pending,
        fail_at,
        chunk,
    })
}

fuzz_target!(|bytes: &[u8]| {
    if let Ok(case) = case(Unstructured::new(bytes))
        && let Err(failure) = framing::check(&case)
    {
        panic!("{failure}");
    }
});
