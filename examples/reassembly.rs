//! Message reassembly with a custom accumulator, a time to live and the
//! `errors` ports, over a replayed network capture.
//!
//! Reads `examples/data/fragments.csv`: lines of
//! `msg_id,part,total,payload`, each one fragment of a message, interleaved
//! and out of order as a receiver would see them. Some messages lose a
//! fragment, a few get one far too late, a couple carry a fragment whose
//! `total` disagrees with the others', and a few lines are malformed. The
//! lines are replayed into the pipeline one every 0.7 ms (about a second in
//! all), so that time really passes between fragments, and:
//!
//! * parses each line with a fallible `#[stage]`; malformed lines go out of
//!   its `errors` port, with the line and the reason (**errors port**);
//! * gathers the fragments of each message with `Reassemble`, an
//!   implementation of `pipeline::accumulate::Accumulator` keyed by message
//!   id, which says a message is `Complete` when all its parts are in, and
//!   `Expired` when a fragment contradicts the others
//!   (**`accumulate(Reassemble::default(), ttl = 200ms, partial_flush = false)`**);
//! * delivers every complete message the moment its last part arrives;
//! * sends what never completes (messages still missing a part 200 ms after
//!   their first fragment, contradicted ones, and those still open when the
//!   capture ends) out of the accumulation's own `errors` port, as
//!   `Unfinished` values carrying the parts received (**ttl expiry**).
//!
//! Then it prints what each sink saw, checks that every line and every
//! fragment is accounted for exactly once, and prints the run's `Report` and
//! the graph as a mermaid diagram.
//!
//! Regenerate the input with `python3 examples/data/generate_fragments.py`
//! and run it from the repository root with:
//!
//! ```text
//! cargo run --release --example reassembly
//! ```

use std::fmt;
use std::time::Duration;

use futures::StreamExt;
use pipeline::accumulate::{Accumulator, Completeness, Unfinished, UnfinishedReason};
use pipeline::prelude::*;
use pipeline::stages::Failed;

const FRAGMENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/fragments.csv");

/// The time between two lines of the replay.
const LINE_GAP: Duration = Duration::from_micros(700);

/// One line of the capture: part `part` (from 1) of `total` of message
/// `msg`.
#[derive(Clone, Debug)]
struct Fragment {
    msg: u32,
    part: u16,
    total: u16,
    payload: String,
}

/// Why a line is not a fragment.
#[derive(Debug)]
enum BadLine {
    Fields(usize),
    Number(&'static str, String),
    ZeroTotal,
    PartBeyondTotal(u16, u16),
}

impl fmt::Display for BadLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadLine::Fields(n) => write!(f, "expected 4 comma-separated fields, found {n}"),
            BadLine::Number(field, value) => write!(f, "{field} `{value}` is not a number"),
            BadLine::ZeroTotal => f.write_str("a message of 0 parts"),
            BadLine::PartBeyondTotal(part, total) => write!(f, "part {part} of only {total}"),
        }
    }
}

/// `msg_id,part,total,payload` to a [`Fragment`]; the payload is the rest of
/// the line, commas and spaces included.
#[stage]
fn parse_fragment(line: String) -> Result<Fragment, BadLine> {
    let fields: Vec<&str> = line.splitn(4, ',').collect();
    let [msg, part, total, payload] = fields[..] else {
        return Err(BadLine::Fields(if line.is_empty() {
            0
        } else {
            fields.len()
        }));
    };
    let number = |field: &'static str, value: &str| {
        value
            .parse::<u32>()
            .map_err(|_| BadLine::Number(field, value.to_owned()))
    };
    let msg = number("message id", msg)?;
    let part = number("part", part)?.min(u16::MAX.into()) as u16;
    let total = number("total", total)?.min(u16::MAX.into()) as u16;
    if total == 0 {
        return Err(BadLine::ZeroTotal);
    }
    if part == 0 || part > total {
        return Err(BadLine::PartBeyondTotal(part, total));
    }
    Ok(Fragment {
        msg,
        part,
        total,
        payload: payload.to_owned(),
    })
}

/// A message as reassembled: complete when every part is in, or the parts
/// received so far when it is let go of unfinished.
#[derive(Clone, Debug)]
struct Message {
    id: u32,
    /// Indexed by part - 1.
    parts: Vec<Option<String>>,
    /// Fragments that went into it, duplicates and contradicting ones
    /// included: what it accounts for.
    fragments: u32,
    /// Why it was given up on early, if the accumulator did.
    conflict: Option<String>,
}

impl Message {
    fn received(&self) -> usize {
        self.parts.iter().filter(|p| p.is_some()).count()
    }

    fn missing(&self) -> Vec<usize> {
        (1..=self.parts.len())
            .filter(|&p| self.parts[p - 1].is_none())
            .collect()
    }

    fn text(&self) -> String {
        self.parts.iter().flatten().map(String::as_str).collect()
    }
}

/// The state of one message being reassembled.
#[derive(Default)]
struct Parts {
    parts: Vec<Option<String>>,
    received: usize,
    fragments: u32,
    conflict: Option<String>,
}

impl Parts {
    fn into_message(self, id: u32) -> Message {
        Message {
            id,
            parts: self.parts,
            fragments: self.fragments,
            conflict: self.conflict,
        }
    }
}

/// Reassembles messages from their fragments, keyed by message id.
struct Reassemble {
    /// The most parts a message may have: a fragment claiming more would
    /// make the state reserve room for them all, so its message is given
    /// up instead.
    max_parts: u16,
}

impl Default for Reassemble {
    fn default() -> Self {
        Reassemble { max_parts: 64 }
    }
}

impl Accumulator<Fragment> for Reassemble {
    type Key = u32;
    type State = Parts;
    type Out = Message;

    fn key(&mut self, fragment: &Fragment) -> u32 {
        fragment.msg
    }

    fn open(&mut self, _: &u32) -> Parts {
        Parts::default()
    }

    fn update(&mut self, _: &u32, state: &mut Parts, fragment: Fragment) {
        state.fragments += 1;
        let total = usize::from(fragment.total);
        if fragment.total > self.max_parts {
            state.conflict.get_or_insert(format!(
                "part {} says {total} parts, more than {} allowed",
                fragment.part, self.max_parts
            ));
            return;
        }
        if state.parts.is_empty() {
            state.parts = vec![None; total];
        } else if state.parts.len() != total {
            // `check` gives the message up: its fragments disagree.
            state.conflict.get_or_insert(format!(
                "part {} says {} parts, earlier ones said {}",
                fragment.part,
                total,
                state.parts.len()
            ));
            return;
        }
        let slot = &mut state.parts[usize::from(fragment.part) - 1];
        if slot.is_none() {
            state.received += 1;
        }
        // A duplicate replaces the copy received before.
        *slot = Some(fragment.payload);
    }

    fn check(&mut self, id: &u32, state: &mut Parts) -> Completeness<Message> {
        if state.conflict.is_some() {
            Completeness::Expired(Some(std::mem::take(state).into_message(*id)))
        } else if state.received == state.parts.len() {
            Completeness::Complete(std::mem::take(state).into_message(*id))
        } else {
            Completeness::Incomplete
        }
    }

    fn flush(&mut self, id: u32, state: Parts) -> Option<Message> {
        Some(state.into_message(id))
    }
}

fn read_lines(path: &str) -> std::io::Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .map(str::to_owned)
        .collect())
}

/// The fragments that went into `messages`.
fn fragments_in<'a>(messages: impl Iterator<Item = &'a Message>) -> u64 {
    messages.map(|m| u64::from(m.fragments)).sum()
}

/// At most `width` characters of `text`, with an ellipsis if cut.
fn abridged(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(width - 1).collect();
        format!("{cut}…")
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lines = read_lines(FRAGMENTS)?;
    let line_count = lines.len();

    // The capture, replayed: line `i` arrives `i * LINE_GAP` after the
    // start, whatever the pipeline does with the lines before it.
    let start = tokio::time::Instant::now();
    let capture = futures::stream::iter(lines.into_iter().enumerate()).then(move |(i, line)| {
        let at = start + LINE_GAP * u32::try_from(i).unwrap_or(u32::MAX);
        async move {
            tokio::time::sleep_until(at).await;
            line
        }
    });

    let mut malformed: Vec<String> = Vec::new();
    let mut delivered: Vec<(Message, Duration)> = Vec::new();
    let mut unfinished: Vec<Unfinished<u32, Message>> = Vec::new();

    let pipeline = pipeline! {
        fragments = stream(capture) >> parse_fragment;
        fragments[errors] >> for_each(|failed: Failed<String, BadLine>| {
            malformed.push(format!("{:?}: {}", failed.input, failed.error));
        });
        messages = fragments >> accumulate(Reassemble::default(), ttl = 200ms, partial_flush = false);
        messages >> for_each(|message: Message| delivered.push((message, start.elapsed())));
        messages[errors] >> for_each(|gave_up: Unfinished<u32, Message>| unfinished.push(gave_up));
    };
    let mermaid = pipeline.graph().to_mermaid();
    let report = pipeline.run().await?;

    println!(
        "replayed {line_count} lines in {:.2} s",
        report.duration.as_secs_f64()
    );
    println!();
    println!(
        "delivered {} complete messages, the first:",
        delivered.len()
    );
    for (message, at) in delivered.iter().take(4) {
        println!(
            "  #{:<4} {} parts, at {:>4} ms: {}",
            message.id,
            message.parts.len(),
            at.as_millis(),
            abridged(&message.text(), 64)
        );
    }
    println!();
    let expired = unfinished
        .iter()
        .filter(|u| u.reason == UnfinishedReason::Expired)
        .count();
    println!(
        "{} messages not delivered ({expired} expired or given up, {} still open at the end):",
        unfinished.len(),
        unfinished.len() - expired
    );
    for gave_up in &unfinished {
        let Some(partial) = &gave_up.partial else {
            println!(
                "  #{:<4} {} (nothing received)",
                gave_up.key, gave_up.reason
            );
            continue;
        };
        let why = match (&gave_up.reason, &partial.conflict) {
            (_, Some(conflict)) => format!("given up: {conflict}"),
            (UnfinishedReason::Expired, None) => "expired after 200 ms".to_owned(),
            (UnfinishedReason::Stopped, None) => "still open when the capture ended".to_owned(),
            (other, None) => other.to_string(),
        };
        println!(
            "  #{:<4} {}/{} parts, missing {:?}: {why}",
            gave_up.key,
            partial.received(),
            partial.parts.len(),
            partial.missing(),
        );
    }
    println!();
    println!("{} malformed lines:", malformed.len());
    for line in &malformed {
        println!("  {line}");
    }

    // Every line is a fragment or malformed; every fragment is in exactly
    // one delivered or unfinished message.
    let parse = report.stage("fragments").expect("the parse stage reports");
    let in_delivered = fragments_in(delivered.iter().map(|(m, _)| m));
    let in_unfinished = fragments_in(unfinished.iter().filter_map(|u| u.partial.as_ref()));
    let accumulated = report.stage("messages").expect("the accumulation reports");
    assert_eq!(parse.items_in, line_count as u64, "every line is read");
    assert_eq!(parse.dead_lettered, malformed.len() as u64);
    assert_eq!(parse.items_out, accumulated.items_in);
    assert_eq!(in_delivered + in_unfinished, accumulated.items_in);
    assert_eq!(accumulated.passed, in_delivered);
    assert_eq!(accumulated.dead_lettered, in_unfinished);
    assert!(delivered.iter().all(|(m, _)| m.missing().is_empty()));
    assert!(report.is_balanced(), "every item is accounted for");
    println!();
    println!(
        "accounted for: {line_count} lines = {} fragments + {} malformed; \
         {} fragments = {in_delivered} delivered + {in_unfinished} undelivered",
        accumulated.items_in,
        malformed.len(),
        accumulated.items_in
    );
    println!();
    println!("{report}");
    println!();
    println!("{mermaid}");
    Ok(())
}
