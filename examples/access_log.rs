//! A web server's access log, summarised per status code.
//!
//! Reads `examples/data/access.log` (an hour of a small shop's server in the
//! combined log format, with a few broken lines) with the `lines` built-in
//! and:
//!
//! * wraps it in `results(..)` and passes the lines through `ok()`, whose
//!   `errors` port gets the lines that could not be read (here, one that is
//!   not UTF-8), so they are listed instead of only logged;
//! * parses each line with a fallible `#[stage]`; the lines it rejects
//!   (truncated, not HTTP, a size that is not a number) go out of its
//!   `errors` port with their text;
//! * counts requests and bytes per status, and the most requested path of
//!   each.
//!
//! Then it prints the summary, the rejected lines and the run's `Report`.
//!
//! Run it from the repository root with:
//!
//! ```text
//! cargo run --example access_log
//! cargo run --example access_log -- /var/log/nginx/access.log
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use pipeline::prelude::*;

const LOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/access.log");

/// One request, as the server logged it.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    status: u16,
    /// The size of the response body (`-` in the log when there is none).
    bytes: u64,
}

/// Why a line is not a request.
#[derive(Debug)]
enum Malformed {
    /// A field ends before its closing quote or bracket.
    Truncated(&'static str),
    /// The quoted request is not `METHOD PATH PROTOCOL`.
    NotHttp,
    /// The status or the size is not a number.
    BadNumber(&'static str),
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformed::Truncated(field) => write!(f, "truncated in the {field}"),
            Malformed::NotHttp => f.write_str("the request is not HTTP"),
            Malformed::BadNumber(field) => write!(f, "the {field} is not a number"),
        }
    }
}

/// Parses `host ident user [time] "METHOD PATH PROTO" status size "referer" "agent"`.
#[stage]
fn parse(line: String) -> Result<Request, Malformed> {
    let (_, rest) = line
        .split_once(" [")
        .ok_or(Malformed::Truncated("client"))?;
    let (_, rest) = rest
        .split_once("] \"")
        .ok_or(Malformed::Truncated("time"))?;
    let (request, rest) = rest
        .split_once("\" ")
        .ok_or(Malformed::Truncated("request"))?;
    let mut words = request.split(' ');
    let (Some(method), Some(path), Some(protocol), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(Malformed::NotHttp);
    };
    if !protocol.starts_with("HTTP/") {
        return Err(Malformed::NotHttp);
    }
    let mut fields = rest.split(' ');
    let status = fields
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or(Malformed::BadNumber("status"))?;
    let bytes = match fields.next() {
        Some("-") => 0,
        Some(size) => size.parse().map_err(|_| Malformed::BadNumber("size"))?,
        None => return Err(Malformed::Truncated("size")),
    };
    Ok(Request {
        method: method.to_owned(),
        path: path.to_owned(),
        status,
        bytes,
    })
}

/// What the summary keeps per status.
#[derive(Default)]
struct Tally {
    requests: u64,
    bytes: u64,
    paths: HashMap<String, u64>,
    methods: BTreeMap<String, u64>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).unwrap_or_else(|| LOG.to_owned());
    let file = tokio::fs::File::open(&path).await?;

    let mut by_status: BTreeMap<u16, Tally> = BTreeMap::new();
    let mut rejected: Vec<String> = Vec::new();
    let mut unreadable: Vec<String> = Vec::new();
    let report = pipeline! {
        // Every line, with the ones that cannot be read as items of their own.
        text = results(lines(file, max_line = 16KiB)) >> ok();
        list_unreadable = text[errors] >> for_each(|failed| unreadable.push(failed.error.to_string()));

        requests = text >> parse;
        list_rejected = requests[errors]
            >> for_each(|failed| rejected.push(format!("{}: {}", failed.error, failed.input)));
        tally = requests >> for_each(|request| {
            let tally = by_status.entry(request.status).or_default();
            tally.requests += 1;
            tally.bytes += request.bytes;
            *tally.paths.entry(request.path).or_default() += 1;
            *tally.methods.entry(request.method).or_default() += 1;
        });
    }
    .run()
    .await?;

    let total: u64 = by_status.values().map(|t| t.requests).sum();
    println!("{path}: {total} requests\n");
    println!(
        "{:<6} {:>8} {:>7} {:>11}  {:<14} most requested",
        "status", "requests", "share", "bytes", "methods"
    );
    for (status, tally) in &by_status {
        let (top, hits) = tally
            .paths
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(path, hits)| (path.as_str(), *hits))
            .unwrap_or(("-", 0));
        let methods: Vec<String> = tally
            .methods
            .iter()
            .map(|(method, n)| format!("{method} {n}"))
            .collect();
        println!(
            "{status:<6} {:>8} {:>6.1}% {:>11}  {:<14} {top} ({hits})",
            tally.requests,
            100.0 * tally.requests as f64 / total.max(1) as f64,
            size(tally.bytes),
            methods.join(", "),
        );
    }
    let bytes: u64 = by_status.values().map(|t| t.bytes).sum();
    println!("{:<6} {total:>8} {:>7} {:>11}", "all", "", size(bytes));

    println!("\nlines that are not requests ({}):", rejected.len());
    for line in &rejected {
        println!("  {}", shorten(line, 100));
    }
    println!("lines that could not be read ({}):", unreadable.len());
    for error in &unreadable {
        println!("  {error}");
    }
    println!("\n{report}");
    Ok(())
}

/// `1.2 MiB`, `830 KiB` or `120 B`.
fn size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    match bytes as f64 {
        b if b >= KIB * KIB => format!("{:.1} MiB", b / (KIB * KIB)),
        b if b >= KIB => format!("{:.0} KiB", b / KIB),
        b => format!("{b} B"),
    }
}

/// `text`, cut to `max` characters.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max - 1).collect();
    format!("{cut}…")
}
