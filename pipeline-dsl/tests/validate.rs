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
        error.contains("the output of `map` goes nowhere") && error.contains(">> discard()"),
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
fn push_as_a_node_points_to_the_handle_made_outside() {
    for push in [quote!(push(8)), quote!(push::<Order>(8))] {
        let error = single_error(quote! { #push >> discard(); });
        assert!(error.contains("`push` cannot be a node"), "{error}");
        assert!(error.contains("let (items, handle) ="), "{error}");
    }
}

#[test]
fn io_builtins_check_their_named_arguments() {
    assert!(
        check_pipeline(quote! {
            lines(r, max_line = 4KiB) >> write_lines(w, flush_every = 0);
            frames(s, b"\r\n", max_frame = 64KiB) >> write(w2);
            interval(50ms, take = 3) >> channel(tx);
            results(frames(s2, b'|')) >> ok() >> sink(s3);
        })
        .is_empty()
    );
    let errors = check_pipeline(quote! {
        frames(s, b"\n", max_frames = 64KiB) >> discard();
        lines(r, max_line = 64kib) >> discard();
        frames(s, b"\n", max_frame = 0B) >> discard();
        frames(s, b"\n", 1024) >> discard();
        interval(0s) >> discard();
        frames(s, b"") >> discard();
        results(map(f)) >> discard();
    });
    assert_eq!(errors.len(), 7, "{errors:#?}");
    assert!(
        errors[0].contains("did you mean `max_frame`?"),
        "{errors:#?}"
    );
    assert!(errors[1].contains("unknown unit `kib`"), "{errors:#?}");
    assert!(errors[2].contains("is zero"), "{errors:#?}");
    assert!(
        errors[3].contains("give `max_frame = ..` by name"),
        "{errors:#?}"
    );
    assert!(errors[4].contains("an `interval` of zero"), "{errors:#?}");
    assert!(errors[5].contains("cannot be empty"), "{errors:#?}");
    assert!(
        errors[6].contains("`results` reads a source"),
        "{errors:#?}"
    );
}

#[test]
fn a_graph_with_bindings_fan_out_merge_branch_and_errors_has_no_errors() {
    let errors = check_pipeline(quote! {
        orders = iter(lines) >> parse;
        orders[errors] >> for_each(log_bad_line);
        split = orders >> branch(|o: &Order, [big, small]| if o.amount > 10 { big } else { small });
        split[big] >> enrich >> alerts;
        split[small] >> totals;
        audit = for_each(write_audit);
        orders >> audit;
        replayed >> audit;
        replayed = iter(backlog) >> parse_old;
    });
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn a_port_of_a_misspelt_name_suggests_the_bound_one() {
    let error = single_error(quote! {
        orders = iter(v) >> parse;
        orders >> discard();
        ordrs[errors] >> discard();
    });
    assert!(
        error.contains("no node called `ordrs`") && error.contains("did you mean `orders`?"),
        "{error}"
    );
}

#[test]
fn a_name_bound_twice_points_at_the_second_binding_and_names_the_first() {
    let errors = check_pipeline(quote! {
        a = iter(v) >> map(f);
        a = iter(w) >> map(g);
        a >> discard();
    });
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains("the name `a` is bound twice (first on line"),
        "{errors:#?}"
    );
}

#[test]
fn a_cycle_is_named_node_by_node() {
    let error = single_error(quote! {
        step = iter(v) >> map(f);
        back = step >> filter(g);
        back >> step;
        back >> discard();
    });
    assert!(
        error.contains("closes a cycle: `step` → `back` → `step`"),
        "{error}"
    );
}

#[test]
fn a_node_nothing_feeds_is_reported() {
    let error = single_error(quote! {
        audit = for_each(f);
        iter(v) >> discard();
    });
    assert!(error.contains("`audit` is never fed"), "{error}");
}

#[test]
fn a_misspelt_branch_port_gets_a_suggestion_and_no_unused_port_error() {
    let error = single_error(quote! {
        split = iter(v) >> branch(|x, [big, small]| if *x > 1 { big } else { small });
        split[bigg] >> discard();
        split[small] >> discard();
    });
    assert!(
        error.contains("`split` has no port `bigg`; did you mean `big`?"),
        "{error}"
    );
}

#[test]
fn a_branch_port_never_connected_is_reported_at_its_declaration() {
    let error = single_error(quote! {
        split = iter(v) >> branch(|x, [big, small]| if *x > 1 { big } else { small });
        split[big] >> discard();
    });
    assert!(
        error.contains("the port `small` of `split` is never connected"),
        "{error}"
    );
}

#[test]
fn an_infallible_builtin_has_no_errors_port() {
    let error = single_error(quote! {
        doubled = iter(v) >> map(f);
        doubled >> discard();
        doubled[errors] >> discard();
    });
    assert!(error.contains("`map` cannot fail"), "{error}");
}

#[test]
fn a_port_cannot_take_input() {
    let error = single_error(quote! {
        split = iter(v) >> branch(|x, [big, small]| if *x > 1 { big } else { small });
        split[big] >> discard();
        iter(w) >> split[small];
    });
    assert!(
        error.contains("`split[small]` is an output port, so it cannot take input"),
        "{error}"
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

#[test]
fn an_unresolved_name_does_not_also_leave_its_neighbours_dangling() {
    let errors = check_pipeline(quote! {
        a = b;
        b = a;
        iter(v) >> a;
    });
    assert!(
        errors.iter().all(|e| !e.contains("go nowhere")),
        "{errors:#?}"
    );
}

#[test]
fn a_statement_that_only_names_a_port_says_so() {
    let errors = check_pipeline(quote! {
        split = iter(v) >> branch(|x, [big, small]| if *x > 1 { big } else { small });
        split[big];
        split[small] >> discard();
    });
    assert!(
        errors
            .iter()
            .any(|e| e.contains("this statement only names `split[big]`")),
        "{errors:#?}"
    );
}

#[test]
fn a_lone_builtin_transform_is_shown_as_a_call() {
    let error = single_error(quote! { map(|x: u64| x); });
    assert!(
        error.contains("as in `iter(items) >> map(..) >> for_each(|item| ..)`"),
        "{error}"
    );
}

#[test]
fn a_lone_stage_name_is_shown_as_a_bare_name() {
    let error = single_error(quote! { parse; });
    assert!(
        error.contains("as in `iter(items) >> parse >> for_each(|item| ..)`"),
        "{error}"
    );
}

#[test]
fn a_lone_transform_and_a_lone_sink_are_one_error_each() {
    let errors = check_pipeline(quote! {
        map(|x: u64| x);
        discard();
    });
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors[0].contains("`iter(items) >> map(..) >>"),
        "{errors:#?}"
    );
    assert!(
        errors[1].contains("`iter(items) >> discard()`"),
        "{errors:#?}"
    );
}

#[test]
fn names_defined_only_in_terms_of_each_other_are_one_error_naming_the_loop() {
    let error = single_error(quote! {
        a = b;
        b = a;
        a >> discard();
    });
    assert!(
        error.starts_with("`a` and `b` are defined only in terms of each other (`a = b`, `b = a`)"),
        "{error}"
    );
}

#[test]
fn a_loop_of_four_names_through_a_port_is_one_error_from_its_first_binding() {
    let error = single_error(quote! {
        c = a;
        b = d[x];
        a = b;
        d = c;
        iter(v) >> c;
        c >> discard();
    });
    assert!(
        error.starts_with(
            "`c`, `a`, `b` and `d` are defined only in terms of each other \
             (`c = a`, `a = b`, `b = d[x]`, `d = c`)"
        ),
        "{error}"
    );
}

#[test]
fn a_name_leading_into_a_loop_is_not_reported_itself() {
    let error = single_error(quote! {
        lead = a;
        a = b;
        b = a;
        lead >> discard();
    });
    assert!(
        error.starts_with("`a` and `b` are defined only in terms of each other"),
        "{error}"
    );
}

#[test]
fn a_name_defined_as_itself_says_itself() {
    let error = single_error(quote! {
        a = a;
        a >> discard();
    });
    assert!(
        error.starts_with("`a` is defined only in terms of itself (`a = a`)"),
        "{error}"
    );
}

#[test]
fn the_ports_of_an_unbound_branch_are_one_error() {
    let error = single_error(quote! {
        iter(v) >> branch(|x, [big, small]| if *x > 1 { big } else { small });
    });
    assert!(
        error.contains("its ports `big` and `small` cannot be connected")
            && error.contains("connect `split[big]` and `split[small]`"),
        "{error}"
    );
}

#[test]
fn the_one_port_of_an_unbound_branch_is_named_in_the_singular() {
    let error = single_error(quote! {
        iter(v) >> branch(|x, [all]| all);
    });
    assert!(
        error.contains("its port `all` cannot be connected and its items would be lost"),
        "{error}"
    );
}
