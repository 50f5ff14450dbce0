//! The built-in operators, one file each.
//!
//! A file holds everything the compiler knows about its operator: the
//! [`Operator`] describing its signature (name, role, arguments), how its
//! arguments are read (once, by [`crate::lower`]), what it can do (fail an
//! item, compose into one pass with its neighbours) and the code it
//! becomes. [`REGISTRY`] lists them in the order the docs do.
//!
//! To add a built-in: a file here with its `pub(crate) static OP`, a line in
//! [`REGISTRY`], and its runtime half behind `pipeline::__private`.

use proc_macro2::{Span, TokenStream};
use quote::quote_spanned;
use syn::{Expr, ExprCall, Ident};

use crate::diagnostics::Diagnostics;

pub mod args;
pub mod fields;

mod accumulate;
mod batch;
mod branch;
mod channel;
mod collect;
mod discard;
mod filter;
mod filter_map;
mod flat_map;
mod for_each;
mod frames;
mod inspect;
mod interval;
mod iter;
mod lines;
mod map;
mod ok;
mod output;
mod push;
mod results;
mod sink;
mod skip;
mod stream;
mod take;
mod then;
mod through;
mod write;
mod write_lines;

pub use args::{IoArgs, Named, Value};

/// Every built-in, in the order the docs list them.
pub static REGISTRY: &[&Operator] = &[
    &iter::OP,
    &stream::OP,
    &lines::OP,
    &frames::OP,
    &push::OP,
    &interval::OP,
    &results::OP,
    &map::OP,
    &filter::OP,
    &filter_map::OP,
    &flat_map::OP,
    &inspect::OP,
    &then::OP,
    &take::OP,
    &skip::OP,
    &ok::OP,
    &through::OP,
    &accumulate::OP,
    &batch::OP,
    &branch::OP,
    &for_each::OP,
    &collect::OP,
    &write::OP,
    &write_lines::OP,
    &discard::OP,
    &output::OP,
    &channel::OP,
    &sink::OP,
];

/// What role a node plays, as far as the macro can tell from its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Produces items.
    Source,
    /// Takes items and emits items.
    Transform,
    /// Groups items by key.
    Accumulator,
    /// Routes items to ports.
    Branch,
    /// Consumes items.
    Sink,
    /// A user's stage: its role is known only from its type, which the
    /// generated code checks.
    Stage,
}

impl Kind {
    /// An article and a noun for messages: "a source".
    pub fn described(self) -> &'static str {
        match self {
            Kind::Source => "a source",
            Kind::Transform => "a transform",
            Kind::Accumulator => "an accumulator",
            Kind::Branch => "a branch",
            Kind::Sink => "a sink",
            Kind::Stage => "a stage",
        }
    }
}

/// A built-in operator: its signature, and the functions that read its
/// arguments and emit its code.
pub struct Operator {
    /// Its name as written.
    pub name: &'static str,
    /// Its role.
    pub kind: Kind,
    /// How many arguments it takes: (min, max).
    pub arity: (usize, usize),
    /// What the arguments are, for error messages.
    pub usage: &'static str,
    /// The arguments it takes by name, after its positional ones (see
    /// [`args::io`]).
    pub named: &'static [Named],
    /// Reads and checks its arguments; called once per node, by
    /// [`crate::lower`].
    pub read: fn(&'static Operator, &ExprCall, &mut Diagnostics) -> Read,
    /// Whether it can fail an item, and so has an `errors` port.
    pub fallible: bool,
    /// Whether it runs a call per item, so `on_error` and `breaker` (about
    /// failed calls) apply to it.
    pub calls_per_item: bool,
    /// Whether a node of it may be composed with its neighbours into one
    /// synchronous pass (`transform::Composed` in the runtime).
    pub composable: fn(&Call) -> bool,
    /// Why it must run as one, never on parallel workers, if it must (a
    /// phrase completing "`take` ..., so it runs as one").
    pub runs_as_one: Option<&'static str>,
    /// Whether it wraps the chain before it rather than being a stage of
    /// it (`through`, which keeps emitting after its input ends). Such a
    /// node takes only the options of its input edge.
    pub wraps_chain: bool,
    /// Whether it is the pipeline's stream output (`output()`).
    pub stream_output: bool,
    /// The code of a node of it: a stage value, a source, or (when
    /// [`wraps_chain`](Self::wraps_chain)) the new chain.
    pub emit: fn(&Call, &Emit) -> TokenStream,
}

impl Operator {
    /// An operator read by [`args::counted`], fallible, running a call per
    /// item, never composed, emitted by `emit`; the operator files change
    /// what differs.
    pub const fn new(
        name: &'static str,
        kind: Kind,
        arity: (usize, usize),
        usage: &'static str,
        emit: fn(&Call, &Emit) -> TokenStream,
    ) -> Operator {
        Operator {
            name,
            kind,
            arity,
            usage,
            named: &[],
            read: args::counted,
            fallible: true,
            calls_per_item: true,
            composable: never,
            runs_as_one: None,
            wraps_chain: false,
            stream_output: false,
            emit,
        }
    }
}

/// The outcome of reading an operator's arguments.
pub enum Read {
    /// Read: the node's arguments, converted. Errors reported on the way
    /// make the node invalid but do not hide its other checks.
    Args(Args),
    /// So malformed (a wrong number of arguments) that checking the node
    /// further would only add noise; what could be read all the same.
    Malformed(Args),
    /// Never a node (`push`): reported, and left out of every other check.
    Refused,
}

/// An operator's arguments, read once.
pub enum Args {
    /// Arguments used as written (closures, values): in [`Call::call`].
    Plain,
    /// An IO operator's arguments, with its named ones converted.
    Io(IoArgs),
    /// `accumulate(..)` or `batch(..)`; `None` if a field was wrong.
    Accumulate(Option<Box<fields::Spec>>),
    /// `branch(|item, [a, b]| ..)`: the ports it declares (every plain
    /// name, even in a list with mistakes, so that each is checked).
    Branch(Vec<Ident>),
}

/// A call of a built-in, with its arguments read.
pub struct Call {
    /// The operator.
    pub op: &'static Operator,
    /// The call as written.
    pub call: ExprCall,
    /// Its arguments, read.
    pub args: Args,
}

impl Call {
    /// The span of the operator's name.
    pub fn func_span(&self) -> Span {
        func_span(&self.call)
    }

    /// The IO arguments, if this is an IO operator read without error.
    pub fn io(&self) -> Option<&IoArgs> {
        match &self.args {
            Args::Io(io) => Some(io),
            _ => None,
        }
    }

    /// The accumulate fields, if read without error.
    pub fn spec(&self) -> Option<&fields::Spec> {
        match &self.args {
            Args::Accumulate(spec) => spec.as_deref(),
            _ => None,
        }
    }
}

/// What an operator's code is emitted into.
pub struct Emit {
    /// The local holding the chain before the node, whose item type the
    /// node's closure learns (through `__private::marker`).
    pub chain: Ident,
    /// The local holding the node's counters.
    pub stats: Ident,
}

/// The built-in called `name`, if there is one.
pub fn lookup(name: &str) -> Option<&'static Operator> {
    REGISTRY.iter().copied().find(|op| op.name == name)
}

/// The built-in `call` calls by its plain name: `lines(r)`, and also
/// `push::<T>(n)` with its turbofish (the only built-in with a type
/// argument, reported as misplaced).
pub fn operator_of(call: &ExprCall) -> Option<&'static Operator> {
    let Expr::Path(func) = &*call.func else {
        return None;
    };
    if func.qself.is_some() || func.path.leading_colon.is_some() {
        return None;
    }
    match func.path.segments.iter().collect::<Vec<_>>().as_slice() {
        [only] if only.arguments.is_none() => lookup(&only.ident.to_string()),
        [only] if only.ident == "push" => lookup("push"),
        _ => None,
    }
}

/// How far a node's arguments could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Read; any error on the way was reported, and the node's other
    /// checks still run.
    Read,
    /// So malformed (a wrong number of arguments) that checking the node
    /// further would only add noise.
    Malformed,
    /// Never a node (`push`): reported, and left out of every other check.
    Refused,
}

/// Reads a call of a built-in: the operator it names and its arguments.
/// `None` if `call` is not a built-in.
pub fn read_call(call: &ExprCall, diagnostics: &mut Diagnostics) -> Option<(Call, Status)> {
    let op = operator_of(call)?;
    let (args, status) = match (op.read)(op, call, diagnostics) {
        Read::Args(args) => (args, Status::Read),
        Read::Malformed(args) => (args, Status::Malformed),
        Read::Refused => (Args::Plain, Status::Refused),
    };
    Some((
        Call {
            op,
            call: call.clone(),
            args,
        },
        status,
    ))
}

/// The span of a call's function name.
pub fn func_span(call: &ExprCall) -> Span {
    match &*call.func {
        Expr::Path(p) => p
            .path
            .segments
            .first()
            .map_or_else(Span::call_site, |s| s.ident.span()),
        _ => Span::call_site(),
    }
}

/// `::pipeline::__private` with every token at `span`, so that errors
/// from a call through it are reported at the user's node.
pub fn private_at(span: Span) -> TokenStream {
    quote_spanned!(span=> ::pipeline::__private)
}

/// `::pipeline::__private::ops`, where the runtime half of each operator
/// lives (one constructor per built-in), at `span`.
pub fn ops_at(span: Span) -> TokenStream {
    quote_spanned!(span=> ::pipeline::__private::ops)
}

/// Never composed.
pub fn never(_: &Call) -> bool {
    false
}

/// Emits nothing: the operator's node is wired by `crate::emit`, which
/// knows its edges.
pub fn emit_by_wiring(_: &Call, _: &Emit) -> TokenStream {
    TokenStream::new()
}

/// `__private::ops::name(first_argument)`: an IO operator taking one value
/// (`channel(sender)`, `sink(s)`).
pub fn emit_io_one(call: &Call, _: &Emit) -> TokenStream {
    let span = call.func_span();
    let ops = ops_at(span);
    let func = Ident::new(call.op.name, span);
    let first = call.io().and_then(|io| io.positional.first());
    quote_spanned!(span=> #ops::#func(#first))
}

/// Always composable (a synchronous step).
pub fn always(_: &Call) -> bool {
    true
}

/// The usual emission of a source: `__private::ops::name(args)`.
pub fn emit_source(call: &Call, _: &Emit) -> TokenStream {
    let span = call.func_span();
    let ops = ops_at(span);
    let func = Ident::new(call.op.name, span);
    let args = call.call.args.iter();
    quote_spanned!(span=> #ops::#func(#(#args),*))
}

/// The usual emission of a stage: `__private::ops::name(marker(&chain), args)`,
/// the marker telling its closure the item type.
pub fn emit_stage(call: &Call, emit: &Emit) -> TokenStream {
    emit_stage_named(call, emit, call.op.name)
}

/// A stage made by the runtime function `name`.
pub fn emit_stage_named(call: &Call, emit: &Emit, name: &str) -> TokenStream {
    let span = call.func_span();
    let private = private_at(span);
    let ops = ops_at(span);
    let func = Ident::new(name, span);
    let chain = &emit.chain;
    let args = call.call.args.iter();
    quote_spanned!(span=> #ops::#func(#private::marker(&#chain), #(#args),*))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operator_is_registered_once_under_its_own_name() {
        for (i, op) in REGISTRY.iter().enumerate() {
            assert!(
                REGISTRY[..i].iter().all(|other| other.name != op.name),
                "`{}` is registered twice",
                op.name
            );
            assert!(std::ptr::eq(lookup(op.name).unwrap(), *op));
            assert!(op.arity.0 <= op.arity.1, "`{}`", op.name);
        }
    }
}
