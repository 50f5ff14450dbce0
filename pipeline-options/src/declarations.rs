//! One declaration per option: the only list of the options' names.

use crate::{Ordering, StageOptions};

/// How an option is written in an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A bare name: `#[ordered]`.
    Flag,
    /// A name with arguments: `#[by_key(|item| key)]`.
    List,
    /// A name with a value: `#[buffer = 1024]`.
    Value,
}

/// The field of [`StageOptions`] an option sets. Options that set the same
/// field exclude each other (`ordered` and `unordered`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// [`StageOptions::parallel`].
    Parallel,
    /// [`StageOptions::ordering`].
    Ordering,
    /// [`StageOptions::buffer`].
    Buffer,
    /// [`StageOptions::on_full`].
    OnFull,
    /// [`StageOptions::backpressure`].
    Backpressure,
    /// [`StageOptions::on_error`].
    OnError,
    /// [`StageOptions::breaker`].
    Breaker,
}

impl Field {
    /// The field's name in [`StageOptions`], which also names what a stage
    /// has one of ("a stage has one ordering").
    pub const fn name(self) -> &'static str {
        match self {
            Field::Parallel => "parallel",
            Field::Ordering => "ordering",
            Field::Buffer => "buffer",
            Field::OnFull => "on_full",
            Field::Backpressure => "backpressure",
            Field::OnError => "on_error",
            Field::Breaker => "breaker",
        }
    }
}

/// One execution option: its name, how it is written, what it does, and
/// what the macro needs to know about it.
#[derive(Debug, Clone, Copy)]
pub struct Declaration {
    /// The key, as in `#[buffer = ..]`.
    pub name: &'static str,
    /// An example of how it is written, such as `#[buffer = 1024]`.
    pub written: &'static str,
    /// What its value is, for the docs.
    pub value: &'static str,
    /// What it does, one sentence (without its full stop), for the docs.
    pub what: &'static str,
    /// What the error for a value of the wrong form says, after "wrong form
    /// for `name`: ".
    pub wrong_form: &'static str,
    /// Whether it is a bare name, a name with arguments or a name with a
    /// value.
    pub form: Form,
    /// The field of [`StageOptions`] it sets.
    pub field: Field,
    /// Whether it is set in these options (for the options that share a
    /// field, whether the field holds this option's value).
    pub is_set: fn(&StageOptions) -> bool,
    /// Whether it sets up the node's input edge (`buffer`, `on_full`,
    /// `backpressure`), so it needs a node with an input.
    pub sets_up_input_edge: bool,
    /// Whether it is about a stage's calls (`parallel`, an ordering,
    /// `on_error`, `breaker`), so it needs a node that calls a stage.
    pub about_calls: bool,
    /// Whether it is about the items a stage fails (`on_error`,
    /// `breaker`), so it needs a node that can fail items.
    pub about_failed_items: bool,
    /// Whether it is only ever set on one node, never for the whole
    /// pipeline (`by_key`, whose value names one node's items).
    pub node_only: bool,
}

/// The declaration of the option called `name`, if there is one.
pub fn declaration(name: &str) -> Option<&'static Declaration> {
    DECLARATIONS.iter().find(|d| d.name == name)
}

/// Every option, in the order the docs list them (and error messages
/// name them).
pub static DECLARATIONS: &[Declaration] = &[
    Declaration {
        name: "parallel",
        written: "#[parallel = 4]",
        value: "a number of workers, `cpu` or `io` (`io(max)`)",
        what: "runs N workers of the stage (one per core for `cpu`; between 1 and 64, adapted to \
               latency, for `io`), each with its own clone of the stage on a spawned task",
        wrong_form: "write `#[parallel = 4]`, `#[parallel = cpu]` or `#[parallel = io]`",
        form: Form::Value,
        field: Field::Parallel,
        is_set: |o| o.parallel.is_some(),
        sets_up_input_edge: false,
        about_calls: true,
        about_failed_items: false,
        node_only: false,
    },
    Declaration {
        name: "ordered",
        written: "#[ordered]",
        value: "none",
        what: "keeps the input order of a parallel stage's outputs (the default)",
        wrong_form: "`ordered` takes no value: write `#[ordered]`",
        form: Form::Flag,
        field: Field::Ordering,
        is_set: |o| o.ordering == Some(Ordering::Ordered),
        sets_up_input_edge: false,
        about_calls: true,
        about_failed_items: false,
        node_only: false,
    },
    Declaration {
        name: "unordered",
        written: "#[unordered]",
        value: "none",
        what: "lets a parallel stage's outputs leave as they finish",
        wrong_form: "`unordered` takes no value: write `#[unordered]`",
        form: Form::Flag,
        field: Field::Ordering,
        is_set: |o| o.ordering == Some(Ordering::Unordered),
        sets_up_input_edge: false,
        about_calls: true,
        about_failed_items: false,
        node_only: false,
    },
    Declaration {
        name: "by_key",
        written: "#[by_key(|item| key)]",
        value: "a closure from the item to its key",
        what: "sends each key to one worker, so each key keeps its order",
        wrong_form: "write `#[by_key(|item| key)]`",
        form: Form::List,
        field: Field::Ordering,
        is_set: |o| o.ordering == Some(Ordering::ByKey),
        sets_up_input_edge: false,
        about_calls: true,
        about_failed_items: false,
        node_only: true,
    },
    Declaration {
        name: "buffer",
        written: "#[buffer = 1024]",
        value: "a number of items",
        what: "sets the capacity, in items, of the node's input edge",
        wrong_form: "write `#[buffer = 1024]`",
        form: Form::Value,
        field: Field::Buffer,
        is_set: |o| o.buffer.is_some(),
        sets_up_input_edge: true,
        about_calls: false,
        about_failed_items: false,
        node_only: false,
    },
    Declaration {
        name: "on_full",
        written: "#[on_full = block]",
        value: "`block`, `drop_oldest` or `drop_newest`",
        what: "says what a full input edge does with one more item: the producer waits for room, \
               or the oldest queued item or the new one is dropped, and counted",
        wrong_form: "write `#[on_full = block]`, `drop_oldest` or `drop_newest`",
        form: Form::Value,
        field: Field::OnFull,
        is_set: |o| o.on_full.is_some(),
        sets_up_input_edge: true,
        about_calls: false,
        about_failed_items: false,
        node_only: false,
    },
    Declaration {
        name: "backpressure",
        written: "#[backpressure = rate(1000, 100)]",
        value: "`credit(initial, replenish)`, `rate(per_sec, burst)`, `adaptive(min, max)` or \
                `pull(window)`",
        what: "holds the producer back beyond the input edge's buffer",
        wrong_form: "write `#[backpressure = rate(1000, 100)]` or `credit(..)`, `adaptive(..)`, \
                     `pull(..)`",
        form: Form::Value,
        field: Field::Backpressure,
        is_set: |o| o.backpressure.is_some(),
        sets_up_input_edge: true,
        about_calls: false,
        about_failed_items: false,
        node_only: false,
    },
    Declaration {
        name: "on_error",
        written: "#[on_error = retry(3, backoff = 10ms)]",
        value: "`ignore`, `dead_letter`, `fail` or `retry(n, backoff = 10ms, max_backoff = 1s, \
                then = dead_letter)`",
        what: "says what happens to an item the stage fails (or panics on): counted and logged, \
               sent to the `errors` port (which must then be connected), the run stops with the \
               stage and item, or tried again with exponential backoff and jitter",
        wrong_form: "write `#[on_error = retry(3, backoff = 10ms)]`, `dead_letter`, `fail` or \
                     `ignore`",
        form: Form::Value,
        field: Field::OnError,
        is_set: |o| o.on_error.is_some(),
        sets_up_input_edge: false,
        about_calls: true,
        about_failed_items: true,
        node_only: false,
    },
    Declaration {
        name: "breaker",
        written: "#[breaker(error_rate = 0.5, window = 10s, min_calls = 20, cooldown = 5s)]",
        value: "settings, each optional: `error_rate` (0.5), `latency` (none), `window` (10s), \
                `min_calls` (20), `cooldown` (5s)",
        what: "stops calling a stage that fails too often, failing items fast until a trial call \
               succeeds",
        wrong_form: "write `#[breaker(error_rate = 0.5, window = 10s, min_calls = 20, cooldown = \
                     5s)]`",
        form: Form::List,
        field: Field::Breaker,
        is_set: |o| o.breaker.is_some(),
        sets_up_input_edge: false,
        about_calls: true,
        about_failed_items: true,
        node_only: false,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declaration_is_consistent() {
        for (i, d) in DECLARATIONS.iter().enumerate() {
            assert!(
                DECLARATIONS[..i].iter().all(|e| e.name != d.name),
                "{} is declared twice",
                d.name
            );
            let start = match d.form {
                Form::Flag => format!("#[{}]", d.name),
                Form::List => format!("#[{}(", d.name),
                Form::Value => format!("#[{} = ", d.name),
            };
            assert!(d.written.starts_with(&start), "{}: {}", d.name, d.written);
            assert!(
                d.wrong_form.contains(&format!("`{}`", d.written)),
                "{}: the wrong-form message shows `{}`",
                d.name,
                d.written
            );
            assert!(!(d.is_set)(&StageOptions::NONE), "{}", d.name);
            assert_ne!(d.sets_up_input_edge, d.about_calls, "{}", d.name);
            assert!(!d.about_failed_items || d.about_calls, "{}", d.name);
            assert!(
                !d.what.ends_with('.') && !d.what.contains(". "),
                "{}",
                d.name
            );
            assert!(std::ptr::eq(declaration(d.name).unwrap(), d));
        }
        assert!(declaration("paralel").is_none());
    }

    #[test]
    fn only_the_options_that_share_a_field_exclude_each_other() {
        let orderings = [Ordering::Ordered, Ordering::Unordered, Ordering::ByKey];
        for ordering in orderings {
            let set = StageOptions {
                ordering: Some(ordering),
                ..StageOptions::NONE
            };
            let named: Vec<_> = DECLARATIONS.iter().filter(|d| (d.is_set)(&set)).collect();
            assert_eq!(named.len(), 1, "{ordering:?}");
            assert_eq!(named[0].field, Field::Ordering);
        }
        for (i, d) in DECLARATIONS.iter().enumerate() {
            let sharing = DECLARATIONS[..i].iter().any(|e| e.field == d.field);
            assert_eq!(
                sharing,
                matches!(d.name, "unordered" | "by_key"),
                "{}",
                d.name
            );
        }
    }
}
