//! Which nodes the expansion fuses into the chain before them, read from
//! the generated code. Each test is named after the decision it covers.

use pipeline_dsl::expand_pipeline;
use quote::quote;

/// The expansion of `tokens`, as text with its spaces removed; one that
/// the macro rejected fails the test, so that a check that some code is
/// absent cannot pass on an expansion that is only an error.
fn expansion(tokens: proc_macro2::TokenStream) -> String {
    let code = expand_pipeline(tokens).to_string().replace(' ', "");
    assert!(!code.contains("compile_error"), "rejected: {code}");
    code
}

#[test]
fn an_accumulation_without_deadlines_pulls_the_chain_before_it_without_an_edge() {
    let code = expansion(quote! {
        iter(v) >> map(|x| x) >> accumulate(key = |x| *x, max_items = 10) >> discard();
    });
    assert!(code.contains("::accumulate_after("), "{code}");
    assert!(!code.contains("::edge_for"), "no edge anywhere: {code}");
    // Its items weigh their in-memory size unless they measure themselves.
    assert!(code.contains("::tally("), "{code}");
    // The source reads longer chunks for it.
    assert!(code.contains("::long_chunks("), "{code}");
}

#[test]
fn an_accumulation_with_max_latency_or_ttl_reads_from_an_edge_to_wake_at_its_deadlines() {
    for policy in [quote!(max_latency = 10ms), quote!(ttl = 1s)] {
        let code = expansion(quote! {
            iter(v) >> accumulate(key = |x| *x, max_items = 10, #policy) >> discard();
        });
        assert!(code.contains("::accumulate("), "{code}");
        assert!(!code.contains("::accumulate_after("), "{code}");
        assert!(code.contains("::edge_for"), "{code}");
        assert!(!code.contains("::long_chunks("), "{code}");
    }
}

#[test]
fn an_accumulation_with_an_edge_option_reads_from_that_edge() {
    let code = expansion(quote! {
        iter(v) >> #[buffer = 64] accumulate(key = |x| *x, max_items = 10) >> discard();
    });
    assert!(code.contains("::accumulate("), "{code}");
    assert!(code.contains("::edge_for"), "{code}");
}

#[test]
fn a_byte_limit_or_size_function_keeps_a_byte_total_per_batch() {
    for policy in [quote!(max_bytes = 1KiB), quote!(size = |x| 3)] {
        let code = expansion(quote! {
            iter(v) >> accumulate(key = |x| *x, max_items = 10, #policy) >> discard();
        });
        assert!(code.contains("::accumulate_after("), "{code}");
        assert!(!code.contains("::tally("), "{code}");
    }
}

#[test]
fn adjacent_synchronous_builtins_are_composed_into_one_pass() {
    let code = expansion(quote! {
        iter(v) >> map(|x| x) >> filter(|x| true) >> filter_map(Some) >> inspect(|x| ()) >> discard();
    });
    assert_eq!(code.matches("::compose(").count(), 1, "{code}");
    assert_eq!(code.matches("::compose_next(").count(), 3, "{code}");
}

#[test]
fn a_lone_builtin_or_one_with_an_option_is_fused_on_its_own() {
    let code = expansion(quote! {
        iter(v) >> map(|x| x) >> #[on_error = fail] filter(|x| true) >> discard();
    });
    assert!(!code.contains("::compose"), "{code}");
    // `map` and `discard` run with no options, `filter` with its own.
    assert_eq!(code.matches("::fuse(").count(), 2, "{code}");
    assert_eq!(code.matches("::fuse_with(").count(), 1, "{code}");
    let code = expansion(quote! {
        iter(v) >> map(|x| x) >> then(|x| async move { x }) >> discard();
    });
    assert!(!code.contains("::compose"), "{code}");
    assert_eq!(code.matches("::fuse(").count(), 3, "{code}");
}

#[test]
fn a_synchronous_for_each_ends_a_composed_run_and_an_async_one_does_not() {
    let code = expansion(quote! {
        iter(v) >> map(|x| x) >> for_each(|x| ());
    });
    assert_eq!(code.matches("::compose_next(").count(), 1, "{code}");
    let code = expansion(quote! {
        iter(v) >> map(|x| x) >> for_each(|x| async move { () });
    });
    assert!(!code.contains("::compose"), "{code}");
    assert!(code.contains("::for_each_async("), "{code}");
}

#[test]
fn a_run_longer_than_sixteen_builtins_is_composed_in_two() {
    let maps = (0..20).map(|_| quote!(>> map(|x| x)));
    let code = expansion(quote! { iter(v) #(#maps)* >> discard(); });
    assert_eq!(code.matches("::compose(").count(), 2, "{code}");
    assert_eq!(code.matches("::compose_next(").count(), 18, "{code}");
}

#[test]
fn a_source_feeding_only_cheap_builtins_into_a_sink_reads_long_chunks() {
    let code = expansion(quote! {
        iter(v) >> map(|x| x) >> filter(|x| true) >> for_each(|x| ());
    });
    assert!(code.contains("::long_chunks("), "{code}");
}

#[test]
fn a_source_feeding_a_stage_of_the_users_or_an_edge_reads_chunks_of_512() {
    for tokens in [
        quote! { iter(v) >> map(|x| x) >> parse >> for_each(|x| ()); },
        quote! { iter(v) >> map(|x| x) >> then(|x| async move { x }) >> for_each(|x| ()); },
        quote! { iter(v) >> map(|x| x) >> #[buffer = 64] for_each(|x| ()); },
        quote! { iter(v) >> map(|x| x) >> collect(&out); },
    ] {
        let code = expansion(tokens);
        assert!(!code.contains("::long_chunks("), "{code}");
        assert!(code.contains("::head("), "{code}");
    }
}
