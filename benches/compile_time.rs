//! Compile-time benchmark: how long the macro crates take to build, and how
//! long a 20-stage `pipeline!` takes to expand and check.
//!
//! Run it with:
//!
//! ```text
//! cargo bench -j2 --bench compile_time
//! ```
//!
//! (`-- quick` times each step once.)
//!
//! It measures, from the workspace this bench is built in:
//!
//! 1. **The macro crates**: `cargo build --release -j2 -p pipeline-dsl -p
//!    pipeline-macros`, after `cargo clean --release` of just those two
//!    crates (their dependencies, syn, quote, proc-macro2 and petgraph,
//!    stay built). It uses a target directory of its own,
//!    `target/compile-time`, so it neither disturbs nor reuses the
//!    workspace's.
//! 2. **A 20-stage `pipeline!`**: a crate generated in
//!    `target/compile-time/gen`, depending on this workspace's `pipeline`
//!    by path, whose `main.rs` holds one pipeline of 20 stages (a source,
//!    18 transforms, a sink). `cargo check -j2` is timed after `main.rs` is
//!    rewritten, so only that crate is checked again (with the macro built
//!    as cargo builds proc-macros for `check`: the dev profile,
//!    unoptimised). The same is timed with a `main.rs` whose `main` is
//!    empty (the same `use`s), and the figure is the difference. For
//!    scale, the same 20 steps written by hand as an iterator chain are
//!    timed the same way. Incremental compilation is off for these
//!    checks (`CARGO_INCREMENTAL=0`): rewriting `main.rs` with the same
//!    text would otherwise let rustc reuse the last check's results. Every
//!    generated `main.rs` raises `recursion_limit` to 256: at the default
//!    (128) a fresh check of a 20-stage `pipeline!` awaited in an `async fn`
//!    fails with "queries overflow the depth limit" (19 stages pass), which
//!    the bench also checks and prints.
//! 3. **Expansion alone**: `pipeline_dsl::expand_pipeline` on the same
//!    20-stage body, in this process (optimised, as the bench profile
//!    builds it), averaged over many calls: the macro's own share of the
//!    check, without rustc's type checking of what it emits.
//!
//! The build runs `RUNS` times and each check `CHECK_RUNS` times; the best
//! and the worst are printed
//! (the machine is shared, so the best is the estimate). Cargo runs
//! `--offline`, with a copy of the workspace's `Cargo.lock`, so nothing is
//! fetched.
//!
//! This is a plain `fn main` (`harness = false`), like the other benches.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs of the macro crates' build.
const RUNS: usize = 3;

/// Runs of each `cargo check` (a fraction of a second each, and noisy).
const CHECK_RUNS: usize = 7;

/// Stages in the generated pipeline.
const STAGES: usize = 20;

/// The workspace root (this bench belongs to its root package).
fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The 18 transforms between the source and the sink, as `pipeline!`
/// nodes and as iterator adapters (same closures).
fn transforms() -> Vec<(String, String)> {
    (0..STAGES - 2)
        .map(|i| {
            let k = i as u64 + 2;
            match i % 4 {
                0 => (
                    format!("map(|x| x.wrapping_mul({k}) + 1)"),
                    format!(".map(|x: u64| x.wrapping_mul({k}) + 1)"),
                ),
                1 => (
                    format!("filter(|x| x % {k} != 0)"),
                    format!(".filter(|x: &u64| x % {k} != 0)"),
                ),
                2 => (
                    format!("filter_map(|x| x.checked_add({k}))"),
                    format!(".filter_map(|x: u64| x.checked_add({k}))"),
                ),
                _ => (
                    format!("inspect(|x| {{ std::hint::black_box(*x ^ {k}); }})"),
                    format!(".inspect(|x: &u64| {{ std::hint::black_box(*x ^ {k}); }})"),
                ),
            }
        })
        .collect()
}

/// The body of the 20-stage `pipeline!`.
fn pipeline_body() -> String {
    let mut body = String::from("iter(0..1000u64)");
    for (node, _) in transforms() {
        body.push_str("\n            >> ");
        body.push_str(&node);
    }
    body.push_str("\n            >> for_each(|x| sum = sum.wrapping_add(x));");
    body
}

/// What every generated `main.rs` starts with. The recursion limit is
/// raised because a 20-stage `pipeline!` awaited in an `async fn` overflows
/// rustc's default query depth (128); the bench checks that separately.
const PRELUDE: &str = "#![recursion_limit = \"256\"]\nuse pipeline::prelude::*;\n\n";

fn main_empty() -> String {
    format!("{PRELUDE}fn main() {{}}\n")
}

fn main_pipeline() -> String {
    format!(
        "{PRELUDE}#[tokio::main(flavor = \"current_thread\")]
async fn main() {{
    let mut sum = 0u64;
    let report = pipeline! {{
        {}
    }}
    .run()
    .await
    .expect(\"runs\");
    println!(\"{{sum}} {{}}\", report.failed());
}}
",
        pipeline_body()
    )
}

fn main_iterators() -> String {
    let mut chain = String::from("(0..1000u64)");
    for (_, adapter) in transforms() {
        chain.push_str("\n        ");
        chain.push_str(&adapter);
    }
    format!(
        "{PRELUDE}#[tokio::main(flavor = \"current_thread\")]
async fn main() {{
    let mut sum = 0u64;
    {chain}
        .for_each(|x| sum = sum.wrapping_add(x));
    println!(\"{{sum}}\");
}}
"
    )
}

/// Runs cargo with `args` in `dir`: how long it took, and its stderr if it
/// failed. Incremental compilation is off, so that a check after rewriting
/// `main.rs` with the same text redoes the work instead of reusing it.
fn try_cargo(dir: &Path, target: &Path, args: &[&str]) -> (Duration, Result<(), String>) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let start = Instant::now();
    let output = Command::new(cargo)
        .args(args)
        .args(["--offline", "--quiet", "--target-dir"])
        .arg(target)
        .current_dir(dir)
        .env("CARGO_INCREMENTAL", "0")
        // Not the bench's own build: its flags and jobs must not leak in.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_MAKEFLAGS")
        .output()
        .expect("run cargo");
    let elapsed = start.elapsed();
    let result = if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    };
    (elapsed, result)
}

/// [`try_cargo`], which must succeed.
fn cargo(dir: &Path, target: &Path, args: &[&str]) -> Duration {
    let (elapsed, result) = try_cargo(dir, target, args);
    if let Err(stderr) = result {
        panic!("cargo {args:?} in {} failed:\n{stderr}", dir.display());
    }
    elapsed
}

/// Best and worst of `runs` timings of `step` (each preceded by `prepare`,
/// untimed).
fn best_worst(
    runs: usize,
    mut prepare: impl FnMut(),
    mut step: impl FnMut() -> Duration,
) -> (Duration, Duration) {
    let times: Vec<Duration> = (0..runs)
        .map(|_| {
            prepare();
            step()
        })
        .collect();
    (
        *times.iter().min().expect("runs > 0"),
        *times.iter().max().expect("runs > 0"),
    )
}

/// Writes the generated crate (without its `main.rs`).
fn generate_crate(dir: &Path) {
    std::fs::create_dir_all(dir.join("src")).expect("create the generated crate");
    let manifest = format!(
        "[package]
name = \"pipeline-compile-time\"
version = \"0.0.0\"
edition = \"2024\"
publish = false

[dependencies]
pipeline = {{ path = {:?} }}
tokio = {{ version = \"1.54\", features = [\"rt\", \"macros\"] }}

# Not part of the workspace it sits under.
[workspace]
",
        workspace().display().to_string()
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).expect("write Cargo.toml");
    // The workspace's lock file, so that --offline finds every version.
    std::fs::copy(workspace().join("Cargo.lock"), dir.join("Cargo.lock")).expect("copy Cargo.lock");
}

fn write_main(dir: &Path, source: &str) {
    // A new write moves the mtime, so cargo checks the crate again.
    std::fs::write(dir.join("src/main.rs"), source).expect("write main.rs");
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let (runs, check_runs) = if quick { (1, 1) } else { (RUNS, CHECK_RUNS) };
    let root = workspace();
    let target = root.join("target/compile-time");
    let gen_dir = target.join("gen");
    let gen_target = target.join("gen-target");

    println!(
        "compile time, cargo -j2 --offline; best and worst of {runs} builds, of {check_runs} checks"
    );
    println!("toolchain: {}", rustc_version());
    println!();

    // 3. Expansion alone, in process.
    let body: proc_macro2::TokenStream = pipeline_body().parse().expect("the body tokenizes");
    let expanded = pipeline_dsl::expand_pipeline(body.clone());
    let expanded_len = expanded.to_string().len();
    assert!(
        !expanded.to_string().contains("compile_error"),
        "the 20-stage pipeline expands without errors"
    );
    let calls = 200;
    let start = Instant::now();
    for _ in 0..calls {
        std::hint::black_box(pipeline_dsl::expand_pipeline(std::hint::black_box(
            body.clone(),
        )));
    }
    let per_expansion = start.elapsed() / calls;

    // 1. The macro crates, from a clean build of just them.
    let build = [
        "build",
        "--release",
        "-j2",
        "-p",
        "pipeline-dsl",
        "-p",
        "pipeline-macros",
    ];
    let clean = [
        "clean",
        "--release",
        "-p",
        "pipeline-dsl",
        "-p",
        "pipeline-macros",
    ];
    cargo(&root, &target, &build); // dependencies, untimed
    let (macro_best, macro_worst) = best_worst(
        runs,
        || {
            cargo(&root, &target, &clean);
        },
        || cargo(&root, &target, &build),
    );

    // 2. cargo check of the generated crate, three ways.
    generate_crate(&gen_dir);
    let check = ["check", "-j2"];
    let timed = |source: String| {
        write_main(&gen_dir, &source);
        cargo(&gen_dir, &gen_target, &check); // warm-up: dependencies
        best_worst(
            check_runs,
            || write_main(&gen_dir, &source),
            || cargo(&gen_dir, &gen_target, &check),
        )
    };
    // Does the 20-stage pipeline check at rustc's default recursion limit?
    write_main(
        &gen_dir,
        &main_pipeline().replace("#![recursion_limit = \"256\"]\n", ""),
    );
    let default_limit = match try_cargo(&gen_dir, &gen_target, &check).1 {
        Ok(()) => "checks".to_owned(),
        Err(stderr) => format!(
            "FAILS: {}",
            stderr
                .lines()
                .filter(|l| l.starts_with("error") || l.contains("note:"))
                .take(2)
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" / ")
        ),
    };
    let empty = timed(main_empty());
    let piped = timed(main_pipeline());
    let iters = timed(main_iterators());

    println!("{:<62} | {:>8} | {:>8}", "step", "best s", "worst s");
    println!("{:-<62}-+-{:-<8}-+-{:-<8}", "", "", "");
    let row = |name: &str, (best, worst): (Duration, Duration)| {
        println!("{name:<62} | {:>8.3} | {:>8.3}", secs(best), secs(worst));
    };
    row(
        "cargo build --release -p pipeline-dsl -p pipeline-macros",
        (macro_best, macro_worst),
    );
    row("cargo check, main.rs with an empty main (baseline)", empty);
    row("cargo check, main.rs with a 20-stage pipeline!", piped);
    row(
        "cargo check, main.rs with the same 20 steps as iterators",
        iters,
    );
    println!();
    println!(
        "20-stage pipeline!, expanded and checked: {:.3} s (best minus best baseline)",
        secs(piped.0.saturating_sub(empty.0))
    );
    println!(
        "the same 20 steps as an iterator chain:    {:.3} s",
        secs(iters.0.saturating_sub(empty.0))
    );
    println!(
        "20-stage pipeline! in #[tokio::main] async fn at the default recursion limit: {default_limit}"
    );
    println!(
        "expand_pipeline alone (optimised, in process): {:.3} ms per expansion, {} chars of output",
        per_expansion.as_secs_f64() * 1e3,
        expanded_len
    );
}

fn rustc_version() -> String {
    Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned()))
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "?".to_owned())
}
