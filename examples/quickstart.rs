//! Word frequencies over a text file, with one `pipeline!`.
//!
//! Reads `examples/data/words.txt`, feeds its lines through a linear
//! pipeline (split into words, drop empty ones, count them into a
//! `HashMap`), then prints the ten most frequent words and the run's
//! [`Report`]: how many items each stage took in, emitted and filtered.
//!
//! It shows:
//!
//! * a `#[stage(flat)]` function used as a stage by its bare name (`words`),
//! * the built-ins `iter`, `filter` and `for_each`, whose closures get their
//!   parameter types from the stage before them, as in an iterator chain,
//! * stages borrowing from `main` (`text`, `counts`): `run()` executes the
//!   pipeline in the caller's task, so nothing needs to be `'static`.
//!
//! Run it from the repository root with:
//!
//! ```text
//! cargo run --release --example quickstart
//! ```

use std::collections::HashMap;

use pipeline::prelude::*;

/// The text to count, shipped with the examples.
const TEXT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/words.txt");

/// How many of the most frequent words to print.
const TOP: usize = 10;

/// Splits a line into lowercase words.
///
/// Anything that is not a letter, a digit or an apostrophe separates words,
/// so punctuation is dropped while `that's` stays one word; apostrophes at
/// either end (quotes) are trimmed. Consecutive separators leave empty
/// words behind, which the pipeline filters out.
#[stage(flat)]
fn words(line: String) -> Vec<String> {
    line.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|word| word.trim_matches('\'').to_lowercase())
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(TEXT)?;
    let mut counts: HashMap<String, u64> = HashMap::new();

    let report = pipeline! {
        iter(text.lines().map(str::to_owned))
            >> words
            >> filter(|word| !word.is_empty())
            >> for_each(|word| *counts.entry(word).or_insert(0) += 1);
    }
    .run()
    .await?;

    let total: u64 = counts.values().sum();
    let mut ranked: Vec<(&str, u64)> = counts.iter().map(|(w, &n)| (w.as_str(), n)).collect();
    // Most frequent first; ties in alphabetical order, so the output is stable.
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));

    println!(
        "{total} words, {} distinct; the {TOP} most frequent:\n",
        counts.len()
    );
    println!("rank  word           count   share");
    for (rank, (word, count)) in ranked.iter().take(TOP).enumerate() {
        let share = 100.0 * *count as f64 / total as f64;
        println!("{:>4}  {word:<12} {count:>7} {share:>6.2}%", rank + 1);
    }
    println!("\n{report}");
    Ok(())
}
