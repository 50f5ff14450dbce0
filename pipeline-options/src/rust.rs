//! How the parts of an option value are spelt in Rust source: the helpers
//! of the value types' `to_rust`.

use std::time::Duration;

/// `Some(value)` or `None`, by full path.
pub(crate) fn option(value: Option<String>) -> String {
    match value {
        Some(value) => format!("::core::option::Option::Some({value})"),
        None => "::core::option::Option::None".to_owned(),
    }
}

/// A duration, to the nanosecond.
pub(crate) fn duration(duration: Duration) -> String {
    match u64::try_from(duration.as_nanos()) {
        Ok(nanos) => format!("::core::time::Duration::from_nanos({nanos}u64)"),
        Err(_) => format!(
            "::core::time::Duration::new({}u64, {}u32)",
            duration.as_secs(),
            duration.subsec_nanos()
        ),
    }
}

/// An `f64` that reads back as exactly the same value: `Debug` prints the
/// shortest digits that do (`0.5`, `1000.0`, `1e-7`), all of them valid
/// float literals.
pub(crate) fn float(value: f64) -> String {
    if value.is_nan() {
        "::core::primitive::f64::NAN".to_owned()
    } else if value == f64::INFINITY {
        "::core::primitive::f64::INFINITY".to_owned()
    } else if value == f64::NEG_INFINITY {
        "::core::primitive::f64::NEG_INFINITY".to_owned()
    } else {
        format!("{value:?}f64")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_float_reads_back_exactly() {
        for value in [
            0.5,
            1.0,
            1000.0,
            0.1 + 0.2,
            1e-7,
            1.8446744073709552e19,
            f64::MIN_POSITIVE,
            f64::MAX,
            -0.25,
            5e-324,
        ] {
            let text = float(value);
            let digits = text.strip_suffix("f64").unwrap();
            assert!(digits.contains(['.', 'e']), "{text} is a float literal");
            assert_eq!(digits.parse::<f64>().unwrap().to_bits(), value.to_bits());
        }
    }

    #[test]
    fn a_duration_too_long_for_u64_nanoseconds_is_written_in_seconds() {
        assert_eq!(
            duration(Duration::from_millis(10)),
            "::core::time::Duration::from_nanos(10000000u64)"
        );
        assert_eq!(
            duration(Duration::MAX),
            format!("::core::time::Duration::new({}u64, 999999999u32)", u64::MAX)
        );
    }
}
