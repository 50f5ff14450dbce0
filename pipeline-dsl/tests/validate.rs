//! The compile-time checks, run on token streams without a proc-macro
//! boundary. Each test is named after the mistake it catches.

use pipeline_dsl::check_pipeline;
use quote::quote;

fn single_error(tokens: proc_macro2::TokenStream) -> String {
    let errors = check_pipeline(tokens);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.into_iter().next().unwrap()
}

#[test]
fn a_valid_linear_chain_has_no_errors() {
    assert!(check_pipeline(quote! { iter(v) >> parse >> map(|x| x) >> for_each(f); }).is_empty());
}

#[test]
fn a_chain_ending_in_a_transform_suggests_discard() {
    let error = single_error(quote! { iter(v) >> map(|x| x); });
    assert!(
        error.contains("ends in `map`") && error.contains(">> discard()"),
        "{error}"
    );
}

#[test]
fn a_source_in_the_middle_cannot_take_input() {
    let error = single_error(quote! { iter(v) >> iter(w) >> discard(); });
    assert!(
        error.contains("`iter` is a source, so it cannot take input"),
        "{error}"
    );
}

#[test]
fn nothing_can_follow_a_sink() {
    let error = single_error(quote! { iter(v) >> for_each(f) >> discard(); });
    assert!(
        error.contains("`for_each` is a sink, so nothing can follow it"),
        "{error}"
    );
}

#[test]
fn a_chain_must_start_with_a_source() {
    let error = single_error(quote! { map(f) >> discard(); });
    assert!(
        error.contains("starts with `map`, which is a transform"),
        "{error}"
    );
}

#[test]
fn an_empty_pipeline_is_an_error() {
    let error = single_error(quote! {});
    assert!(error.contains("this pipeline is empty"), "{error}");
}

#[test]
fn a_misspelled_option_gets_a_suggestion() {
    let error = single_error(quote! { iter(v) >> #[paralel = 2] parse >> discard(); });
    assert!(
        error.contains("unknown option `paralel`; did you mean `parallel`?"),
        "{error}"
    );
}

#[test]
fn builtins_check_their_argument_count() {
    let error = single_error(quote! { iter(v) >> map() >> discard(); });
    assert!(error.contains("`map` takes one argument"), "{error}");
}

#[test]
fn every_mistake_of_one_invocation_is_reported() {
    let errors = check_pipeline(quote! { map(f) >> for_each(g) >> iter(v); });
    assert_eq!(errors.len(), 3, "{errors:#?}");
}

#[test]
fn constructs_of_the_graph_dsl_are_rejected_by_name_until_supported() {
    let error = single_error(quote! { iter(v) >> lines(r) >> discard(); });
    assert!(
        error.contains("the built-in `lines` is not supported yet"),
        "{error}"
    );
    let errors = check_pipeline(quote! { a = iter(v) >> parse; a >> discard(); });
    assert!(
        errors
            .iter()
            .any(|e| e.contains("binding `a = ..` is not supported yet")),
        "{errors:#?}"
    );
}

#[test]
fn expansion_never_panics_on_malformed_input() {
    for tokens in [
        quote! { >> >> ; },
        quote! { = ; = = ; },
        quote! { #![] a; },
        quote! { a[b][c] >> ; },
        quote! { x >> #[] y; },
        quote! { (a >> b) >> c; },
        quote! { a = b = c; },
    ] {
        let _ = pipeline_dsl::expand_pipeline(tokens);
    }
}
