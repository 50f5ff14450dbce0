//! The macro's front end must never panic, whatever tokens it is given: a
//! panic in a proc macro is reported by rustc as an internal-looking error
//! ("proc macro panicked") instead of pointing at the user's mistake.
//!
//! Random token sequences built from the DSL's alphabet go through
//! [`expand_pipeline`] (parse, lower, graph, check, plan, emit). For every input
//! the expansion must:
//!
//! - not panic;
//! - be a well-formed Rust expression, so that rustc gets as far as
//!   reporting the errors in it;
//! - carry one `compile_error!` per error that [`check_pipeline`] reports,
//!   and at least one for an input that is not a valid pipeline;
//! - for a valid pipeline, build a `Pipeline::segmented` and carry no
//!   `compile_error!`.
//!
//! Four generators are used: a "soup" of arbitrary pieces of the
//! alphabet, where validity is judged by the front end itself plus a few
//! rules that hold for any input (a missing final `;`, an empty statement);
//! chain-shaped pipelines, whose validity an independent model of the rules
//! predicts (except for the parts of the graph DSL, such as bindings and
//! ports, that not every version supports); and graph-shaped pipelines:
//! random bindings that refer to each other and to ports, and well-formed
//! wirings (fan-out, branch ports, merges, `[errors]`, cycles), sometimes
//! shuffled or with statements left out.
//!
//! `PROPTEST_CASES` overrides the number of cases (256 by default).
//!
//! A stack overflow aborts the test binary instead of failing one test,
//! and the input is lost. To find it, run again with `NO_PANIC_TRACE=1`,
//! which prints every input to stderr before it is expanded: the last one
//! printed is the culprit. Known ones are then run in a child process (see
//! `in_child_process`).

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::process::Command;
use std::sync::{LazyLock, Once};

use pipeline_dsl::{check_pipeline, expand_pipeline};
use proc_macro2::{TokenStream, TokenTree};
use proptest::prelude::*;
use proptest::sample::select;

// ---------------------------------------------------------------------------
// Running the front end and catching panics.

thread_local! {
    /// Whether a panic on this thread is expected to be caught (and so
    /// should be recorded instead of printed).
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
    /// The message and location of the last caught panic on this thread.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs, once per process, a panic hook that records the message and
/// location of panics raised inside [`catching`], and leaves every other
/// panic (such as a failed assertion) to the default hook.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CAPTURING.with(Cell::get) {
                let message = info.payload_as_str().unwrap_or("<non-string payload>");
                let location = info
                    .location()
                    .map_or_else(|| "<unknown location>".to_owned(), ToString::to_string);
                LAST_PANIC.with(|last| {
                    *last.borrow_mut() = Some(format!("`{message}` at {location}"));
                });
            } else {
                default(info);
            }
        }));
    });
}

/// Runs `f`, turning a panic into `Err("`message` at file:line:col")`.
fn catching<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_panic_hook();
    CAPTURING.with(|c| c.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CAPTURING.with(|c| c.set(false));
    result.map_err(|_| {
        LAST_PANIC
            .with(|last| last.borrow_mut().take())
            .unwrap_or_else(|| "<panic message not recorded>".to_owned())
    })
}

/// What the front end made of one input.
struct Outcome {
    /// The tokens the macro was given.
    input: TokenStream,
    /// `expand_pipeline`'s output.
    expansion: TokenStream,
    /// `check_pipeline`'s messages.
    errors: Vec<String>,
}

/// Tokenizes `source` and runs the front end on it.
///
/// `Ok(None)` when `source` does not tokenize (unbalanced delimiters, which
/// a real macro never sees); `Err` with a description when the front end
/// panics.
fn run(source: &str) -> Result<Option<Outcome>, String> {
    static TRACE: LazyLock<bool> = LazyLock::new(|| std::env::var_os("NO_PANIC_TRACE").is_some());
    let Ok(input) = source.parse::<TokenStream>() else {
        return Ok(None);
    };
    if *TRACE {
        // Straight to stderr, past the test harness's capture, so that it
        // is seen even if the process aborts.
        let _ = writeln!(std::io::stderr(), "no_panic input: {source}");
    }
    let expansion = catching(|| expand_pipeline(input.clone())).map_err(|panic| {
        format!("expand_pipeline panicked on input\n    {source}\nwith {panic}")
    })?;
    let errors = catching(|| check_pipeline(input.clone()))
        .map_err(|panic| format!("check_pipeline panicked on input\n    {source}\nwith {panic}"))?;
    Ok(Some(Outcome {
        input,
        expansion,
        errors,
    }))
}

/// Runs the front end on `source`, failing the test if it panics.
fn expand_without_panic(source: &str) -> Outcome {
    match run(source) {
        Ok(Some(outcome)) => outcome,
        Ok(None) => panic!("test input does not tokenize: {source}"),
        Err(panic) => panic!("{panic}"),
    }
}

/// How many `compile_error` identifiers `tokens` holds, at any depth.
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

/// Whether the identifiers `a` and then `b` appear next to each other
/// (ignoring punctuation in between) at any depth.
fn has_path(tokens: &TokenStream, a: &str, b: &str) -> bool {
    let trees: Vec<TokenTree> = tokens.clone().into_iter().collect();
    trees.iter().enumerate().any(|(i, token)| match token {
        TokenTree::Ident(ident) if ident == a => trees[i + 1..]
            .iter()
            .find(|t| !matches!(t, TokenTree::Punct(_)))
            .is_some_and(|t| matches!(t, TokenTree::Ident(next) if next == b)),
        TokenTree::Group(group) => has_path(&group.stream(), a, b),
        _ => false,
    })
}

/// The checks every expansion must pass. `Err` describes the first one that
/// failed.
fn check_outcome(source: &str, outcome: &Outcome) -> Result<(), String> {
    let Outcome {
        input,
        expansion,
        errors,
    } = outcome;
    let fail = |what: &str| {
        Err(format!(
            "{what}\n  input:     {source}\n  tokens:    {input}\n  errors:    {errors:?}\n  expansion: {expansion}"
        ))
    };
    if let Err(error) = syn::parse2::<syn::Expr>(expansion.clone()) {
        return fail(&format!("the expansion is not a Rust expression ({error})"));
    }
    let compile_errors = count_compile_errors(expansion);
    if compile_errors != errors.len() {
        return fail(&format!(
            "the expansion has {compile_errors} `compile_error!`s but check_pipeline reports {} errors",
            errors.len()
        ));
    }
    if errors.is_empty() && !has_path(expansion, "Pipeline", "segmented") {
        return fail("a pipeline without errors does not expand to a `Pipeline`");
    }
    // Rules that hold whatever the tokens are.
    let top: Vec<TokenTree> = input.clone().into_iter().collect();
    let is_semi = |t: &TokenTree| matches!(t, TokenTree::Punct(p) if p.as_char() == ';');
    if top.last().is_some_and(|t| !is_semi(t)) && errors.is_empty() {
        return fail("input that does not end in `;` was accepted");
    }
    let empty_statement = top.first().is_some_and(is_semi)
        || top.windows(2).any(|w| is_semi(&w[0]) && is_semi(&w[1]));
    if empty_statement && errors.is_empty() {
        return fail("input with an empty statement was accepted");
    }
    if top.is_empty() && errors.is_empty() {
        return fail("empty input was accepted");
    }
    Ok(())
}

/// Runs `source` through the front end and checks the outcome; skips it if
/// it does not tokenize.
fn check_source(source: &str) -> Result<(), TestCaseError> {
    match run(source) {
        Ok(None) => Ok(()),
        Ok(Some(outcome)) => check_outcome(source, &outcome).map_err(TestCaseError::fail),
        Err(panic) => Err(TestCaseError::fail(panic)),
    }
}

// ---------------------------------------------------------------------------
// Generator 1: a soup of the DSL's alphabet.

const NAMES: &[&str] = &["a", "orders", "split", "parse", "v", "x", "map", "iter"];

const PORTS: &[&str] = &["orders[errors]", "split[big]", "a[1]", "a[]", "a[b][c]"];

const CALLS: &[&str] = &[
    "iter(v)",
    "stream(s)",
    "map(|x| x + 1)",
    "filter(|x| *x > 1)",
    "inspect(|x| println!(\"{x}\"))",
    "then(|x| async move { x })",
    "take(3)",
    "skip(0)",
    "for_each(|x| println!(\"{x}\"))",
    "for_each(|x| async move { drop(x) })",
    "discard()",
    "collect(&out)",
    "branch(|x, [big, small]| if *x > 1 { big } else { small })",
    "accumulate(key = |e| e.k, max_items = 5)",
    "batch(max_items = 5, max_latency = 50ms)",
    "lines(r)",
    "map()",
    "discard(1)",
    "iter()",
    "for_each(a, b)",
    "Api::new(1)",
    "client.stage()",
    "my::stage",
];

const LITERALS: &[&str] = &["1", "\"s\"", "50ms", "0", "'c'", "1.5"];

const ATTRIBUTES: &[&str] = &[
    "#[parallel = 2]",
    "#![buffer = 8]",
    "#[paralel = 2]",
    "#[ordered]",
    "#[on_error(skip)]",
    "#[a::b]",
    "#[]",
    "#!",
    "#",
];

const GROUPS: &[&str] = &[
    "()",
    "[]",
    "{}",
    "(a)",
    "[a, b]",
    "{ a >> b }",
    "(iter(v) >> discard())",
    "{ let x = 1; x }",
    "((()))",
    "[;]",
    "(;)",
];

const JUNK: &[&str] = &[
    ",", ".", "::", ">", "<", "|", "||", "&", "*", "!", "?", "-", "->", "=>", "..", "@", "$", ":",
    "==", ">=", ">>=", "<<", "'a",
];

/// One piece of the alphabet, weighted towards the pieces a pipeline is
/// made of.
fn piece() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        6 => Just(">>"),
        3 => Just(";"),
        2 => Just("="),
        5 => select(NAMES),
        2 => select(PORTS),
        6 => select(CALLS),
        2 => select(LITERALS),
        2 => select(ATTRIBUTES),
        2 => select(GROUPS),
        2 => select(JUNK),
    ]
}

/// A sequence of pieces, sometimes wrapped in a delimiter, sometimes ended
/// by `;`, joined by spaces.
fn soup() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(piece(), 0..24),
        any::<bool>(),
        prop_oneof![8 => Just(("", "")), 1 => Just(("(", ")")), 1 => Just(("{", "}"))],
    )
        .prop_map(|(pieces, semi, (open, close))| {
            let mut source = pieces.join(" ");
            if semi {
                source.push_str(" ;");
            }
            if open.is_empty() {
                source
            } else {
                format!("{open} {source} {close}")
            }
        })
}

// ---------------------------------------------------------------------------
// Generator 2: chain-shaped pipelines, with a model of the rules.

/// What the model knows about a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Source,
    Transform,
    Sink,
    /// A user's stage (a name, a path or an expression): fine anywhere.
    Stage,
    /// Part of the DSL but not supported by every version (a port, a
    /// built-in without code generation yet): the model does not predict
    /// whether a pipeline with one is accepted.
    Unsupported,
    /// Always an error: a wrong number of arguments.
    Wrong,
}

const NODES: &[(&str, Role)] = &[
    ("iter(v)", Role::Source),
    ("iter(vec![1, 2, 3])", Role::Source),
    ("stream(s)", Role::Source),
    ("map(|x| x + 1)", Role::Transform),
    ("filter(|x| *x > 1)", Role::Transform),
    ("filter_map(|x| Some(x))", Role::Transform),
    ("flat_map(|x| vec![x, x])", Role::Transform),
    ("inspect(|x| println!(\"{x}\"))", Role::Transform),
    ("then(|x| async move { x })", Role::Transform),
    ("take(3)", Role::Transform),
    ("skip(1)", Role::Transform),
    ("take(0)", Role::Wrong),
    ("for_each(|x| println!(\"{x}\"))", Role::Sink),
    ("for_each(async |x| drop(x))", Role::Sink),
    ("for_each(|x| async move { drop(x) })", Role::Sink),
    ("discard()", Role::Sink),
    ("collect(&out)", Role::Sink),
    ("parse", Role::Stage),
    ("a", Role::Stage),
    ("map", Role::Stage),
    ("my::stage", Role::Stage),
    ("Api::new(1)", Role::Stage),
    ("client.stage()", Role::Stage),
    ("(parse)", Role::Stage),
    ("Stage { n: 1 }", Role::Stage),
    // A bare closure would swallow the rest of the chain as its body.
    ("(|x| x)", Role::Stage),
    ("orders[errors]", Role::Unsupported),
    ("split[big]", Role::Unsupported),
    (
        "branch(|x, [big, small]| if *x > 1 { big } else { small })",
        Role::Unsupported,
    ),
    (
        "accumulate(key = |e| e.k, max_items = 5)",
        Role::Unsupported,
    ),
    (
        "batch(max_items = 5, max_latency = 50ms)",
        Role::Unsupported,
    ),
    ("lines(r)", Role::Unsupported),
    ("interval(50ms)", Role::Unsupported),
    ("map()", Role::Wrong),
    ("map(f, g)", Role::Wrong),
    ("discard(1)", Role::Wrong),
    ("iter()", Role::Wrong),
];

/// Options written before a node, and whether the DSL knows them (an
/// unknown option is always an error; a known one may not be supported).
const NODE_OPTIONS: &[(&str, bool)] = &[
    ("#[parallel = 2]", true),
    ("#[ordered]", true),
    ("#[buffer(8)]", true),
    ("#[paralel = 2]", false),
    ("#[a::b]", false),
];

/// Names bound with `name = ..` (not supported by every version).
const BINDINGS: &[&str] = &["orders", "split", "a"];

/// `#![..]` pipeline options, and whether the DSL knows them.
const PIPELINE_OPTIONS: &[(&str, bool)] = &[
    ("#![buffer = 8]", true),
    ("#![parallel = 2]", true),
    ("#![bufer = 8]", false),
];

/// What the model predicts for a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Valid,
    Invalid,
    /// Depends on which parts of the graph DSL this version supports.
    Either,
}

#[derive(Debug, Clone)]
struct Node {
    option: Option<(&'static str, bool)>,
    text: &'static str,
    role: Role,
}

#[derive(Debug, Clone)]
struct Statement {
    binding: Option<&'static str>,
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
struct Pipeline {
    option: Option<(&'static str, bool)>,
    statements: Vec<Statement>,
    /// Whether the last statement ends in `;` (the others always do).
    final_semi: bool,
}

impl Pipeline {
    fn render(&self) -> String {
        let mut out = Vec::new();
        if let Some((option, _)) = self.option {
            out.push(option.to_owned());
        }
        for (i, statement) in self.statements.iter().enumerate() {
            if let Some(binding) = statement.binding {
                out.push(format!("{binding} ="));
            }
            let nodes: Vec<String> = statement
                .nodes
                .iter()
                .map(|node| match node.option {
                    Some((option, _)) => format!("{option} {}", node.text),
                    None => node.text.to_owned(),
                })
                .collect();
            out.push(nodes.join(" >> "));
            if i + 1 < self.statements.len() || self.final_semi {
                out.push(";".to_owned());
            }
        }
        out.join(" ")
    }

    /// What the rules of the DSL say about the pipeline. Always wrong: a
    /// missing final `;`, an empty statement or pipeline, a built-in with
    /// the wrong number of arguments, an unknown option. Otherwise, when it
    /// uses only what every version supports (one statement of built-ins
    /// and stages, no bindings, ports or options), it is valid exactly when
    /// it is a chain of at least two nodes from a source (or stage) to a
    /// sink (or stage) with no source after the start and no sink before
    /// the end.
    fn expect(&self) -> Expect {
        let mut statements = &self.statements[..];
        let mut final_semi = self.final_semi;
        // An empty last statement without `;` renders as nothing at all.
        if let [rest @ .., last] = statements
            && !final_semi
            && last.binding.is_none()
            && last.nodes.is_empty()
        {
            statements = rest;
            final_semi = true;
        }
        let nodes = || statements.iter().flat_map(|s| &s.nodes);
        let always_wrong = !final_semi
            || statements.is_empty()
            || statements.iter().any(|s| s.nodes.is_empty())
            || self.option.is_some_and(|(_, known)| !known)
            || nodes().any(|n| n.role == Role::Wrong || n.option.is_some_and(|(_, known)| !known));
        if always_wrong {
            return Expect::Invalid;
        }
        let [statement] = statements else {
            return Expect::Either;
        };
        if self.option.is_some()
            || statement.binding.is_some()
            || nodes().any(|n| n.role == Role::Unsupported || n.option.is_some())
        {
            return Expect::Either;
        }
        let nodes = &statement.nodes;
        let (first, last) = (nodes[0].role, nodes[nodes.len() - 1].role);
        let valid = nodes.len() >= 2
            && matches!(first, Role::Source | Role::Stage)
            && nodes[1..].iter().all(|n| n.role != Role::Source)
            && nodes[..nodes.len() - 1]
                .iter()
                .all(|n| n.role != Role::Sink)
            && last != Role::Transform;
        if valid {
            Expect::Valid
        } else {
            Expect::Invalid
        }
    }
}

fn node() -> impl Strategy<Value = Node> {
    (
        prop::option::weighted(0.05, select(NODE_OPTIONS)),
        select(NODES),
    )
        .prop_map(|(option, (text, role))| Node { option, text, role })
}

/// A chain that is more often than not well-formed: a source, transforms
/// or stages, a sink; then mutated by swapping in random nodes.
fn chain() -> impl Strategy<Value = Vec<Node>> {
    let by_role = |role: Role| {
        let nodes: Vec<(&'static str, Role)> =
            NODES.iter().copied().filter(|n| n.1 == role).collect();
        select(nodes).prop_map(|(text, role)| Node {
            option: None,
            text,
            role,
        })
    };
    let middle = prop_oneof![3 => by_role(Role::Transform), 1 => by_role(Role::Stage)];
    prop_oneof![
        // Source >> middle* >> sink.
        3 => (
            by_role(Role::Source),
            prop::collection::vec(middle, 0..5),
            by_role(Role::Sink),
        )
            .prop_map(|(source, middle, sink)| {
                let mut nodes = vec![source];
                nodes.extend(middle);
                nodes.push(sink);
                nodes
            }),
        // Anything.
        2 => prop::collection::vec(node(), 0..7),
    ]
}

fn statement() -> impl Strategy<Value = Statement> {
    (prop::option::weighted(0.1, select(BINDINGS)), chain())
        .prop_map(|(binding, nodes)| Statement { binding, nodes })
}

fn pipeline() -> impl Strategy<Value = Pipeline> {
    (
        prop::option::weighted(0.05, select(PIPELINE_OPTIONS)),
        prop_oneof![
            6 => prop::collection::vec(statement(), 1..=1),
            1 => prop::collection::vec(statement(), 0..4),
        ],
        prop::bool::weighted(0.9),
    )
        .prop_map(|(option, statements, final_semi)| Pipeline {
            option,
            statements,
            final_semi,
        })
}

// ---------------------------------------------------------------------------
// Generator 3: graph-shaped pipelines.

/// Names for bindings: few, so that statements refer to each other.
const GRAPH_NAMES: &[&str] = &["a", "b", "c"];

/// References to bound names and their ports.
const REFS: &[&str] = &["a", "b", "c", "a[x]", "b[big]", "b[small]", "c[errors]"];

fn graph_statement() -> impl Strategy<Value = Statement> {
    let element = prop_oneof![
        2 => select(REFS).prop_map(|text| Node {
            option: None,
            text,
            // Unsupported: the model then makes no prediction beyond the
            // rules that always hold.
            role: Role::Unsupported,
        }),
        3 => node(),
    ];
    (
        prop::option::weighted(0.6, select(GRAPH_NAMES)),
        prop::collection::vec(element, 0..5),
    )
        .prop_map(|(binding, nodes)| Statement { binding, nodes })
}

fn graph_pipeline() -> impl Strategy<Value = Pipeline> {
    (
        prop::option::weighted(0.05, select(PIPELINE_OPTIONS)),
        prop::collection::vec(graph_statement(), 1..6),
        prop::bool::weighted(0.95),
    )
        .prop_map(|(option, statements, final_semi)| Pipeline {
            option,
            statements,
            final_semi,
        })
}

/// Well-formed graph wiring: fan-out, branch ports, merges, `[errors]`
/// ports, cycles and independent chains, with `@` standing for a binding
/// name; sometimes shuffled or with statements left out. Most are valid,
/// so code generation for graphs gets exercised too.
fn wired_graph() -> impl Strategy<Value = String> {
    const SOURCES: &[&str] = &["iter(v)", "iter(vec![1u64, 2, 3])", "stream(s)", "numbers"];
    const MIDDLES: &[&str] = &[
        "map(|x| x + 1)",
        "filter(|x| *x > 1)",
        "inspect(|x| println!(\"{x}\"))",
        "then(|x| async move { x })",
        "take(2)",
        "skip(1)",
        "parse",
    ];
    const SINKS: &[&str] = &[
        "discard()",
        "for_each(|x| println!(\"{x}\"))",
        "collect(&out)",
        "store",
    ];
    let mids = || {
        prop::collection::vec(select(MIDDLES), 0..3)
            .prop_map(|m| m.iter().map(|m| format!(" >> {m}")).collect::<String>())
    };
    let src = || select(SOURCES);
    let sink = || select(SINKS);
    let shape = prop_oneof![
        (src(), mids(), sink()).prop_map(|(src, m, sink)| vec![format!("{src}{m} >> {sink};")]),
        (src(), mids(), prop::collection::vec((mids(), sink()), 1..4)).prop_map(
            |(src, m, outs)| {
                let mut v = vec![format!("@ = {src}{m};")];
                v.extend(outs.iter().map(|(m, sink)| format!("@{m} >> {sink};")));
                v
            }
        ),
        (src(), mids(), mids(), sink(), mids(), sink()).prop_map(|(src, m, mb, sb, ms, ss)| {
            vec![
                format!(
                    "@ = {src}{m} >> branch(|x, [big, small]| if *x > 1 {{ big }} else {{ small }});"
                ),
                format!("@[big]{mb} >> {sb};"),
                format!("@[small]{ms} >> {ss};"),
            ]
        }),
        (prop::collection::vec((src(), mids()), 2..4), any::<bool>(), sink()).prop_map(
            |(ins, into_sink, sink)| {
                let mut v = if into_sink {
                    vec![format!("@ = {sink};")]
                } else {
                    vec!["@ = map(|x| x + 1);".to_owned(), format!("@ >> {sink};")]
                };
                v.extend(ins.iter().map(|(src, m)| format!("{src}{m} >> @;")));
                v
            }
        ),
        (src(), mids(), sink(), sink()).prop_map(|(src, m, ok, errors)| {
            vec![
                format!("@ = {src} >> parse;"),
                format!("@{m} >> {ok};"),
                format!("@[errors] >> {errors};"),
            ]
        }),
        (src(), sink()).prop_map(|(src, sink)| {
            vec![
                format!("@ = {src} >> map(|x| x + 1);"),
                "@_back = @ >> filter(|x| *x < 10);".to_owned(),
                "@_back >> @;".to_owned(),
                format!("@_back >> {sink};"),
            ]
        }),
    ];
    prop::collection::vec(shape, 1..4)
        .prop_map(|shapes| {
            shapes
                .iter()
                .enumerate()
                .flat_map(|(i, statements)| {
                    let name = format!("n{i}");
                    statements.iter().map(move |s| s.replace('@', &name))
                })
                .collect::<Vec<String>>()
        })
        .prop_flat_map(|statements| {
            let len = statements.len();
            prop_oneof![
                4 => Just(statements.clone()),
                1 => Just(statements.clone()).prop_shuffle(),
                1 => prop::sample::subsequence(statements, 0..=len),
            ]
        })
        .prop_map(|statements| statements.join(" "))
}

// ---------------------------------------------------------------------------
// The properties.

/// Renders `pipeline`, runs it through the front end, checks the outcome
/// and compares it with the model's prediction.
fn check_against_model(pipeline: &Pipeline) -> Result<(), TestCaseError> {
    let source = pipeline.render();
    let outcome = match run(&source) {
        Ok(Some(outcome)) => outcome,
        Ok(None) => return Err(TestCaseError::fail(format!("does not tokenize: {source}"))),
        Err(panic) => return Err(TestCaseError::fail(panic)),
    };
    check_outcome(&source, &outcome).map_err(TestCaseError::fail)?;
    let accepted = outcome.errors.is_empty();
    let expected = pipeline.expect();
    prop_assert!(
        match expected {
            Expect::Valid => accepted,
            Expect::Invalid => !accepted,
            Expect::Either => true,
        },
        "the model says {:?} but the front end reports {:?}\n  input: {}",
        expected,
        outcome.errors,
        source
    );
    Ok(())
}

/// 256 cases unless `PROPTEST_CASES` says otherwise; no regression files
/// (a failure prints the minimal input, which belongs in a `#[test]`).
fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 256;
    }
    config.failure_persistence = None;
    config
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_soup_of_the_alphabet_never_panics_and_errors_are_reported(source in soup()) {
        check_source(&source)?;
    }

    #[test]
    fn a_chain_shaped_pipeline_is_accepted_when_the_rules_allow_it(pipeline in pipeline()) {
        check_against_model(&pipeline)?;
    }

    #[test]
    fn a_wired_graph_never_panics_and_errors_are_reported(source in wired_graph()) {
        check_source(&source)?;
    }

    #[test]
    fn a_graph_shaped_pipeline_never_panics_and_errors_are_reported(
        pipeline in graph_pipeline()
    ) {
        check_against_model(&pipeline)?;
    }
}

// ---------------------------------------------------------------------------
// Specific nasty inputs.

/// Runs `source` and checks the outcome, failing on a panic; returns the
/// errors.
///
/// Runs on a thread with a large stack: the expansion of a long input can
/// be deeply nested (one level per chain), and re-parsing it with syn in a
/// debug build needs more than a test thread's default 2 MiB. (rustc gives
/// the macro itself 8 MiB.)
fn nasty(source: &str) -> Vec<String> {
    let source = source.to_owned();
    let check = move || {
        let outcome = expand_without_panic(&source);
        if let Err(failure) = check_outcome(&source, &outcome) {
            panic!("{failure}");
        }
        outcome.errors
    };
    std::thread::Builder::new()
        .name("nasty".into())
        .stack_size(64 << 20)
        .spawn(check)
        .expect("spawn a thread")
        .join()
        .unwrap_or_else(|panic| panic::resume_unwind(panic))
}

#[test]
fn empty_input() {
    assert!(!nasty("").is_empty());
}

#[test]
fn only_semicolons() {
    assert!(!nasty(";").is_empty());
    assert!(!nasty("; ; ;").is_empty());
}

#[test]
fn operators_without_stages() {
    for source in [
        ">>",
        ">> >>",
        ">> >> ;",
        "a >> >> b;",
        ">> a;",
        "iter(v) >> ;",
    ] {
        assert!(!nasty(source).is_empty(), "{source}");
    }
}

#[test]
fn assignments_without_sides() {
    for source in [
        "a = ;",
        "= = =;",
        "=;",
        "= a;",
        "a = b = c;",
        "a = = b;",
        "= >> =;",
    ] {
        assert!(!nasty(source).is_empty(), "{source}");
    }
}

#[test]
fn malformed_ports() {
    for source in [
        "a[] >> b;",
        "iter(v) >> a[] >> discard();",
        "a[;] >> b;",
        "a[>>] >> b;",
        "orders[errors];",
    ] {
        assert!(!nasty(source).is_empty(), "{source}");
    }
    // Index expressions and arrays, not ports: users' stages like any
    // other, left to the type checker.
    for source in ["a[1] >> b;", "a[b][c] >> d;", "[] >> a;"] {
        assert!(nasty(source).is_empty(), "{source}");
    }
}

#[test]
fn stray_options() {
    for source in [
        "#![buffer = 8]",
        "#!",
        "#",
        "#[] iter(v) >> discard();",
        "iter(v) >> #![buffer = 8] discard();",
        "iter(v) >> discard(); #![buffer = 8]",
        "#[parallel] >> a;",
        "iter(v) >> #[parallel = 2] >> discard();",
    ] {
        assert!(!nasty(source).is_empty(), "{source}");
    }
}

/// An option before a node of any expression kind (a literal, a unary or
/// `?` expression, an `async` block) is read and checked like any other:
/// a wrong one is reported by the macro, not passed through to rustc.
#[test]
fn an_option_on_any_node_is_checked() {
    for source in [
        "iter(v) >> #[parallel = 0] 1 >> discard();",
        "iter(v) >> #[parallel = 0] -x >> discard();",
        "iter(v) >> #[parallel = 0] x? >> discard();",
        "iter(v) >> #[parallel = 0] async {} >> discard();",
    ] {
        assert!(!nasty(source).is_empty(), "{source}");
    }
}

#[test]
fn deeply_nested_parens() {
    let depth = 64;
    let nested = format!("{}x{}", "(".repeat(depth), ")".repeat(depth));
    assert!(nasty(&format!("iter(v) >> map(|x| {nested}) >> discard();")).is_empty());
    assert!(!nasty(&format!("{nested};")).is_empty());
    let groups = format!("{}{}", "[(".repeat(depth), ")]".repeat(depth));
    assert!(!nasty(&format!("a >> {groups} >> ;")).is_empty());
}

#[test]
fn a_chain_of_200_nodes() {
    let middle = vec!["map(|x| x + 1)"; 198].join(" >> ");
    let source = format!("iter(v) >> {middle} >> discard();");
    assert!(nasty(&source).is_empty());
    // The same chain with a mistake at every tenth node.
    let nodes: Vec<&str> = (0..200)
        .map(|i| if i % 10 == 5 { "iter(w)" } else { "parse" })
        .collect();
    let errors = nasty(&format!("iter(v) >> {};", nodes.join(" >> ")));
    assert_eq!(errors.len(), 20, "{errors:#?}");
}

#[test]
fn two_hundred_statements() {
    nasty(&"iter(v) >> discard(); ".repeat(200));
    nasty(&"a = iter(v) >> parse; a >> discard(); ".repeat(100));
    nasty(&"iter(v) >> map(|x| x); ".repeat(200));
}

/// The harness itself: a panic is caught and described with its location.
#[test]
fn a_panic_is_reported_with_its_message_and_location() {
    let error = catching(|| panic!("boom")).unwrap_err();
    assert!(
        error.starts_with("`boom` at ") && error.contains("no_panic.rs"),
        "{error}"
    );
    assert_eq!(catching(|| 1).unwrap(), 1);
}

/// Stack overflows, which abort the process, cannot be caught: run the
/// front end on `source` in a child process (this test binary, running
/// only `child_process`) and report how it ended.
fn in_child_process(source: &str) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = Command::new(exe)
        .args(["child_process", "--exact", "--ignored", "--test-threads=1"])
        .env(CHILD_INPUT, source)
        .output()
        .map_err(|e| e.to_string())?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    Err(format!(
        "the front end failed on input\n    {source}\nin a child process ({}):\n{}{}",
        output.status,
        stdout.trim(),
        stderr.trim()
    ))
}

/// The input `in_child_process` passes to `child_process`.
const CHILD_INPUT: &str = "NO_PANIC_CHILD_INPUT";

#[test]
#[ignore = "run by `in_child_process`"]
fn child_process() {
    if let Ok(source) = std::env::var(CHILD_INPUT) {
        let outcome = expand_without_panic(&source);
        if let Err(failure) = check_outcome(&source, &outcome) {
            panic!("{failure}");
        }
    }
}

/// Not a panic but worse, found by the graph-shaped property: an earlier
/// `graph::resolve` followed an alias that names a port (`a = b[x]`) by
/// calling itself on the aliased name, which started a new bounded walk,
/// so a cycle of references through a port recursed until the stack
/// overflowed and the whole compiler aborted. Run in a child process, so a
/// regression fails this test instead of aborting the run.
#[test]
fn a_cycle_of_aliases_through_a_port_does_not_overflow_the_stack() {
    for source in [
        "a = b[x]; b = a;",
        "a = a[x]; a >> discard();",
        "a = b[x]; b = c; c = a;",
        // A binding names its statement's last element: here `b[y]`,
        // which is `b`'s own port.
        "b = iter(v) >> b[y]; b >> discard();",
        "b = c[x] >> b[y]; c = iter(v); b >> discard();",
    ] {
        if let Err(failure) = in_child_process(source) {
            panic!("{failure}");
        }
    }
}

/// The child-process runner itself, on an input that works.
#[test]
fn a_child_process_runs_the_front_end() {
    in_child_process("iter(v) >> discard();").unwrap();
}

/// Found by fuzzing: about 800 nested parentheses in a closure overflowed
/// the stack of a debug build of the macro in `syn`'s recursive parser
/// (`fuzz/regressions/dsl/stack-overflow-nested-parens-4000`). The depth is
/// now checked first, without recursing, and reported as an error.
#[test]
fn deeply_nested_brackets_are_an_error_not_a_stack_overflow() {
    for depth in [200, 4_000] {
        let source = format!(
            "iter(v) >> map(|x| {}x{}) >> discard();",
            "(".repeat(depth),
            ")".repeat(depth)
        );
        if let Err(failure) = in_child_process(&source) {
            panic!("{failure}");
        }
        let messages = nasty(&source);
        assert!(
            messages.iter().any(|m| m.contains("nest more than")),
            "{messages:?}"
        );
    }
}
