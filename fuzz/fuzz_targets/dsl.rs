//! The `pipeline!` and `#[stage]` front ends (parse, lower, graph, check,
//! plan, emit) on arbitrary token streams: never a panic, and an expansion
//! rustc can read, with one `compile_error!` per reported error. The
//! proptest version is `pipeline-dsl/tests/no_panic.rs`.
//!
//! The first byte picks how the rest becomes tokens: as Rust source text
//! (what any macro input can be), or as a sequence of pieces of the DSL
//! (names, built-ins, `>>`, `;`, `=`, ports, options, groups), which
//! reaches far deeper into the graph checks and code generation.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pipeline_dsl::{check_pipeline, expand_pipeline, expand_stage};
use proc_macro2::{TokenStream, TokenTree};

const PIECES: &[&str] = &[
    ">>",
    ">>",
    ">>",
    ";",
    ";",
    "=",
    "a",
    "b",
    "c",
    "orders",
    "split",
    "parse",
    "x",
    "v",
    "a[errors]",
    "b[big]",
    "b[small]",
    "c[errors]",
    "a[x]",
    "split[big]",
    "iter(v)",
    "iter(vec![1u64, 2, 3])",
    "stream(s)",
    "lines(r)",
    "frames(r, b\"\\n\", 64)",
    "push(p)",
    "interval(50ms)",
    "map(|x| x + 1)",
    "filter(|x| *x > 1)",
    "filter_map(|x| Some(x))",
    "flat_map(|x| vec![x])",
    "inspect(|x| println!(\"{x}\"))",
    "then(|x| async move { x })",
    "take(3)",
    "skip(0)",
    "ok()",
    "for_each(|x| println!(\"{x}\"))",
    "for_each(|x| async move { drop(x) })",
    "discard()",
    "collect(&out)",
    "write(w)",
    "write_lines(w)",
    "channel(tx)",
    "sink(s)",
    "branch(|x, [big, small]| if *x > 1 { big } else { small })",
    "branch(|x, [big]| big)",
    "branch(|x| x)",
    "accumulate(key = |e| e.k, max_items = 5)",
    "accumulate(key = |e| e.k, max_bytes = 64KiB, max_latency = 50ms, ttl = 1s, partial_flush = false)",
    "accumulate(key = |e| e.k, max_items = 5, spill = \"/tmp\", max_memory = 1MiB)",
    "accumulate(Acc, ttl = 30s)",
    "batch(max_items = 5, max_latency = 50ms)",
    "batch(max_items = 0)",
    "accumulate(key = |e| e.k, max_items = 5mz)",
    "#[parallel = 2]",
    "#[parallel = io]",
    "#[parallel = cpu]",
    "#[parallel = 0]",
    "#[ordered]",
    "#[unordered]",
    "#[by_key(|x: &u64| x % 3)]",
    "#[buffer = 8]",
    "#[buffer = 0]",
    "#[on_full = drop_oldest]",
    "#[on_full = drop_newest]",
    "#[on_full = block]",
    "#[backpressure = credit(4, 2)]",
    "#[backpressure = rate(10, 1)]",
    "#[backpressure = adaptive(1, 8)]",
    "#[backpressure = pull(2)]",
    "#[on_error = retry(3, backoff = 10ms)]",
    "#[on_error = dead_letter]",
    "#[on_error = fail]",
    "#[breaker(error_rate = 0.5, window = 10s, min_calls = 20, cooldown = 5s)]",
    "#![buffer = 8]",
    "#![on_full = drop_newest]",
    "#![parallel = 2]",
    "#[paralel = 2]",
    "#[a::b]",
    "#[]",
    "#",
    "#!",
    "Api::new(1)",
    "client.stage()",
    "my::stage",
    "(parse)",
    "Stage { n: 1 }",
    "(|x| x)",
    "()",
    "[]",
    "{}",
    "(a)",
    "[a, b]",
    "{ a >> b }",
    "(;)",
    "[;]",
    "1",
    "\"s\"",
    "50ms",
    "'c'",
    ",",
    ".",
    "::",
    ">",
    "<",
    "|",
    "&",
    "*",
    "!",
    "?",
    "-",
    "->",
    "=>",
    "..",
    "@",
    "$",
    ":",
];

/// `#[stage(..)]` arguments and items.
const STAGE_ARGS: &[&str] = &[
    "",
    "source",
    "sink",
    "flat",
    "parallel = 2",
    "on_error = retry(3)",
    "buffer = 4",
    "on_full = drop_newest",
    "by_key(|x: &u64| *x)",
    "unordered",
    "sinkk",
    "source, sink",
];
const STAGE_ITEMS: &[&str] = &[
    "fn f(x: u64) -> u64 { x }",
    "async fn f(x: u64) -> Result<u64, E> { Ok(x) }",
    "fn f(x: u64, ctx: &StageContext) -> Option<u64> { Some(x) }",
    "fn f() -> impl Iterator<Item = u64> { 0..3 }",
    "fn f(x: u64) -> Vec<u64> { vec![x] }",
    "fn f<T>(x: T) -> T { x }",
    "fn f(&self, x: u64) -> u64 { x }",
    "fn f(x: &u64) -> u64 { *x }",
    "fn f(x: u64, y: u64) -> u64 { x }",
    "struct S;",
    "async fn f() -> u64 { 1 }",
];

fn pieces(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| PIECES[usize::from(*b) % PIECES.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

fn count_compile_errors(tokens: &TokenStream) -> usize {
    tokens
        .clone()
        .into_iter()
        .map(|token| match token {
            TokenTree::Ident(ident) if ident == "compile_error" => 1,
            TokenTree::Group(group) => count_compile_errors(&group.stream()),
            _ => 0,
        })
        .sum()
}

fn mentions(tokens: &TokenStream, name: &str) -> bool {
    tokens.clone().into_iter().any(|token| match token {
        TokenTree::Ident(ident) => ident == name,
        TokenTree::Group(group) => mentions(&group.stream(), name),
        _ => false,
    })
}

fn pipeline(source: &str) {
    let Ok(input) = source.parse::<TokenStream>() else {
        return;
    };
    let expansion = expand_pipeline(input.clone());
    let errors = check_pipeline(input.clone());
    if let Err(error) = syn::parse2::<syn::Expr>(expansion.clone()) {
        panic!(
            "the expansion is not an expression ({error})\n  input: {source}\n  expansion: {expansion}"
        );
    }
    let compile_errors = count_compile_errors(&expansion);
    assert_eq!(
        compile_errors,
        errors.len(),
        "one compile_error! per error\n  input: {source}\n  errors: {errors:?}\n  expansion: {expansion}"
    );
    if errors.is_empty() {
        assert!(
            mentions(&expansion, "Pipeline"),
            "a pipeline without errors builds a Pipeline\n  input: {source}\n  expansion: {expansion}"
        );
    }
    let top: Vec<TokenTree> = input.into_iter().collect();
    let semi = |t: &TokenTree| matches!(t, TokenTree::Punct(p) if p.as_char() == ';');
    if errors.is_empty() {
        assert!(!top.is_empty(), "empty input accepted");
        assert!(
            top.last().is_some_and(semi),
            "input without a final `;` accepted: {source}"
        );
        assert!(
            !top.first().is_some_and(semi) && !top.windows(2).any(|w| semi(&w[0]) && semi(&w[1])),
            "an empty statement accepted: {source}"
        );
    }
}

fn stage(args: &str, item: &str) {
    let (Ok(args), Ok(item)) = (args.parse::<TokenStream>(), item.parse::<TokenStream>()) else {
        return;
    };
    let expansion = expand_stage(args, item.clone());
    // An item that is not Rust is handed back as written, beside the
    // error, for rustc to report; only a valid one must expand to items.
    if syn::parse2::<syn::Item>(item.clone()).is_err() {
        return;
    }
    if let Err(error) = syn::parse2::<syn::File>(expansion.clone()) {
        panic!(
            "the #[stage] expansion is not items ({error})\n  item: {item}\n  expansion: {expansion}"
        );
    }
}

fuzz_target!(|bytes: &[u8]| {
    let Some((&mode, rest)) = bytes.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                pipeline(text);
            }
        }
        1 | 2 => pipeline(&pieces(rest)),
        _ => {
            let Some((&which, rest)) = rest.split_first() else {
                return;
            };
            let args = STAGE_ARGS[usize::from(which) % STAGE_ARGS.len()];
            let item = STAGE_ITEMS[usize::from(which >> 4) % STAGE_ITEMS.len()];
            match std::str::from_utf8(rest) {
                // Arbitrary text as the arguments, or as the item.
                Ok(text) if which & 8 != 0 => stage(text, item),
                Ok(text) if !text.is_empty() => stage(args, text),
                _ => stage(args, item),
            }
        }
    }
});
