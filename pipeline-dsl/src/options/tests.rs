//! The options read from attributes, and written back as Rust.

use super::*;

fn read_all(attrs: TokenStream) -> (Options, Vec<String>) {
    let attrs = syn::Attribute::parse_outer
        .parse2(attrs)
        .expect("attributes");
    let mut diagnostics = Diagnostics::new();
    let options = parse_attributes(&attrs, &mut diagnostics);
    (options, diagnostics.messages())
}

#[test]
fn every_declared_option_has_a_reader() {
    for declaration in DECLARATIONS {
        assert!(reader(declaration.name).is_some(), "{}", declaration.name);
    }
}

#[test]
fn every_declared_option_reads_its_written_example_back_as_itself() {
    for declaration in DECLARATIONS {
        let (options, errors) = read_all(declaration.written.parse().unwrap());
        assert_eq!(errors, Vec::<String>::new(), "{}", declaration.written);
        let keys: Vec<_> = options.keys().iter().map(|(d, _)| d.name).collect();
        assert_eq!(keys, [declaration.name]);
    }
}

#[test]
fn a_retry_without_then_dead_letters_only_if_the_errors_port_is_connected() {
    let (options, errors) = read_all(quote!(#[on_error = retry(3, backoff = 1s)]));
    assert!(errors.is_empty(), "{errors:?}");
    assert!(options.then_unset && options.dead_letters().is_none());
    let connected = options.to_runtime(true).to_string().replace(' ', "");
    assert!(connected.contains("then:::pipeline::__private::options::Exhausted::DeadLetter"));
    assert!(connected.contains("Duration::from_nanos(1000000000u64)"));
    assert!(connected.contains("max_backoff:::core::time::Duration::from_nanos(60000000000u64)"));
    let alone = options.to_runtime(false).to_string().replace(' ', "");
    assert!(alone.contains("then:::pipeline::__private::options::Exhausted::Ignore"));
    let (options, _) = read_all(quote!(#[on_error = retry(3, then = dead_letter)]));
    assert!(!options.then_unset && options.dead_letters().is_some());
}

#[test]
fn the_runtime_literal_holds_every_value_written() {
    let (options, errors) = read_all(quote! {
        #[parallel = io(16)]
        #[by_key(|x: &u64| *x)]
        #[buffer = 8]
        #[backpressure = rate(1000, 10)]
        #[breaker(error_rate = 0.25, latency = 100ms)]
    });
    assert!(errors.is_empty(), "{errors:?}");
    let text = options.to_runtime(false).to_string().replace(' ', "");
    for part in [
        "parallel:::core::option::Option::Some(::pipeline::__private::options::Parallelism::Io{max:16usize})",
        "ordering:::core::option::Option::Some(::pipeline::__private::options::Ordering::ByKey)",
        "buffer:::core::option::Option::Some(8usize)",
        "on_full:::core::option::Option::None",
        "Rate{per_sec:1000.0f64,burst:10usize}",
        "error_rate:0.25f64,latency:::core::option::Option::Some(::core::time::Duration::from_nanos(100000000u64))",
        "min_calls:20u32",
    ] {
        assert!(text.contains(part), "{part} in {text}");
    }
    assert!(by_key(&options).is_some());
}
