//! The operators `pipeline!` knows by name, and what it knows about them.

use crate::graph::Kind;

/// A built-in operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    /// Its name as written.
    pub name: &'static str,
    /// Source, transform or sink.
    pub kind: Kind,
    /// How many arguments it takes: (min, max).
    pub arity: (usize, usize),
    /// What the arguments are, for error messages.
    pub usage: &'static str,
    /// Whether this version generates code for it.
    pub implemented: bool,
}

const fn b(
    name: &'static str,
    kind: Kind,
    arity: (usize, usize),
    usage: &'static str,
    implemented: bool,
) -> Builtin {
    Builtin {
        name,
        kind,
        arity,
        usage,
        implemented,
    }
}

/// Every built-in, in the order the docs list them.
pub const BUILTINS: &[Builtin] = &[
    b("iter", Kind::Source, (1, 1), "iter(items)", true),
    b(
        "stream",
        Kind::Source,
        (1, 1),
        "stream(a_futures_stream)",
        true,
    ),
    b("lines", Kind::Source, (1, 1), "lines(reader)", false),
    b(
        "frames",
        Kind::Source,
        (2, 3),
        "frames(reader, delimiter, max_frame = ..)",
        false,
    ),
    b("push", Kind::Source, (1, 1), "push(capacity)", false),
    b("interval", Kind::Source, (1, 1), "interval(period)", false),
    b("map", Kind::Transform, (1, 1), "map(|item| new_item)", true),
    b(
        "filter",
        Kind::Transform,
        (1, 1),
        "filter(|item: &T| keep)",
        true,
    ),
    b(
        "filter_map",
        Kind::Transform,
        (1, 1),
        "filter_map(|item| Some(new_item))",
        true,
    ),
    b(
        "flat_map",
        Kind::Transform,
        (1, 1),
        "flat_map(|item| items)",
        true,
    ),
    b(
        "inspect",
        Kind::Transform,
        (1, 1),
        "inspect(|item: &T| ..)",
        true,
    ),
    b(
        "then",
        Kind::Transform,
        (1, 1),
        "then(|item| async move { new_item })",
        true,
    ),
    b(
        "accumulate",
        Kind::Accumulator,
        (1, 10),
        "accumulate(key = |item| key, max_items = N)",
        true,
    ),
    b(
        "batch",
        Kind::Accumulator,
        (1, 8),
        "batch(max_items = N, max_latency = 50ms)",
        true,
    ),
    b(
        "branch",
        Kind::Branch,
        (1, 1),
        "branch(|item, [a, b]| if .. { a } else { b })",
        true,
    ),
    b("for_each", Kind::Sink, (1, 1), "for_each(|item| ..)", true),
    b("collect", Kind::Sink, (1, 1), "collect(&collected)", true),
    b(
        "write",
        Kind::Sink,
        (1, 2),
        "write(writer, flush_every = ..)",
        false,
    ),
    b(
        "write_lines",
        Kind::Sink,
        (1, 2),
        "write_lines(writer, flush_every = ..)",
        false,
    ),
    b("discard", Kind::Sink, (0, 0), "discard()", true),
    b("channel", Kind::Sink, (1, 1), "channel(sender)", false),
    b("sink", Kind::Sink, (1, 1), "sink(a_futures_sink)", false),
];

/// The built-in called `name`, if there is one.
pub fn lookup(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}
