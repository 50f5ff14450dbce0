//! The contract between the macros and the facade: which items of
//! `pipeline::__private` the generated code names. It is a second API,
//! undocumented by design, so it is kept small on purpose and this test
//! makes its size visible (`cargo test --test private_surface -- --nocapture`
//! prints the list) and stops it growing silently.
//!
//! The corpus is every `pipeline!` and `#[stage]` written in this
//! repository: tests, ui tests (passing and failing: the expansion after an
//! error names items too), examples, benches and the docs' examples.
//!
//! The runtime halves of the built-in operators (`__private::ops::map`,
//! one per file of `pipeline-dsl/src/ops/`) are counted apart: they grow
//! with the operators, by design. Everything else is the facade's contract
//! with the macros, and must stay under [`LIMIT`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use proc_macro2::{Delimiter, TokenStream, TokenTree};

/// The most `__private` items generated code may name. Lower it when the
/// surface shrinks; raising it needs a reason in the commit.
const LIMIT: usize = 95;

#[test]
fn generated_code_names_few_private_items() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut names = BTreeSet::new();
    let mut ops = BTreeSet::new();
    let mut expansions = 0;
    for file in corpus(root) {
        let text = std::fs::read_to_string(&file).unwrap();
        let sources = if file.extension().is_some_and(|e| e == "md") {
            rust_blocks(&text)
        } else {
            vec![text]
        };
        for source in sources {
            let Ok(tokens) = source.parse::<TokenStream>() else {
                continue;
            };
            for expansion in expand_all(tokens) {
                expansions += 1;
                private_names(expansion, &mut names, &mut ops);
            }
        }
    }
    println!(
        "{} `__private` items named by the expansions of {expansions} macro invocations:",
        names.len()
    );
    println!("{}", names.iter().cloned().collect::<Vec<_>>().join(" "));
    println!(
        "and {} operator constructors under `__private::ops`: {}",
        ops.len(),
        ops.iter().cloned().collect::<Vec<_>>().join(" ")
    );
    assert!(
        !names.contains("ops") && ops.len() >= 20,
        "the operators' constructors are named through `__private::ops::NAME`: {ops:?}"
    );
    assert!(expansions > 200, "the corpus shrank: {expansions}");
    assert!(
        names.len() <= LIMIT,
        "generated code names {} `__private` items, more than {LIMIT}: {names:?}",
        names.len()
    );
}

fn corpus(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in [
        "tests",
        "examples",
        "benches",
        "ui-tests/pass",
        "ui-tests/fail",
        "docs",
    ] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "rs" || e == "md") {
                files.push(path);
            }
        }
    }
    files.push(root.join("README.md"));
    files.sort();
    files
}

/// The ```rust blocks of a Markdown file, with rustdoc's hidden-line
/// markers (`# `) removed.
fn rust_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match &mut current {
            None if line.trim_start().starts_with("```rust") => current = Some(String::new()),
            Some(block) if line.trim_start().starts_with("```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                let line = line.strip_prefix("# ").unwrap_or(line);
                block.push_str(if line == "#" { "" } else { line });
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// Every `pipeline! { .. }` and `#[stage] fn ..` in `tokens`, expanded.
fn expand_all(tokens: TokenStream) -> Vec<TokenStream> {
    let mut out = Vec::new();
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let mut i = 0;
    while i < trees.len() {
        match &trees[i] {
            TokenTree::Ident(ident) if ident == "pipeline" => {
                if let (Some(TokenTree::Punct(bang)), Some(TokenTree::Group(body))) =
                    (trees.get(i + 1), trees.get(i + 2))
                    && bang.as_char() == '!'
                {
                    out.push(pipeline_dsl::expand_pipeline(body.stream()));
                    i += 3;
                    continue;
                }
            }
            TokenTree::Punct(hash) if hash.as_char() == '#' => {
                if let Some(TokenTree::Group(attr)) = trees.get(i + 1)
                    && attr.delimiter() == Delimiter::Bracket
                    && let Some(args) = stage_args(attr.stream())
                    && let Some(end) = (i + 2..trees.len()).find(|&j| {
                        matches!(&trees[j], TokenTree::Group(g) if g.delimiter() == Delimiter::Brace)
                    })
                {
                    let item: TokenStream = trees[i + 2..=end].iter().cloned().collect();
                    out.push(pipeline_dsl::expand_stage(args, item));
                    i = end + 1;
                    continue;
                }
            }
            TokenTree::Group(group) => out.extend(expand_all(group.stream())),
            _ => {}
        }
        i += 1;
    }
    out
}

/// `stage` or `stage(args)` (or `pipeline::stage(..)`): the arguments.
fn stage_args(attr: TokenStream) -> Option<TokenStream> {
    let trees: Vec<TokenTree> = attr.into_iter().collect();
    let at = trees
        .iter()
        .position(|t| matches!(t, TokenTree::Ident(i) if i == "stage"))?;
    let path_before = trees[..at].iter().all(|t| match t {
        TokenTree::Ident(i) => i == "pipeline",
        TokenTree::Punct(p) => p.as_char() == ':',
        _ => false,
    });
    if !path_before {
        return None;
    }
    match &trees[at + 1..] {
        [] => Some(TokenStream::new()),
        [TokenTree::Group(args)] if args.delimiter() == Delimiter::Parenthesis => {
            Some(args.stream())
        }
        _ => None,
    }
}

/// Records the item after each `__private::` in `tokens` (each name of a
/// `__private::{..}` group), and the operator after each
/// `__private::ops::` in `ops`.
fn private_names(tokens: TokenStream, names: &mut BTreeSet<String>, ops: &mut BTreeSet<String>) {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    for (i, tree) in trees.iter().enumerate() {
        match tree {
            TokenTree::Ident(ident) if ident == "__private" => {
                let colons = matches!(
                    (trees.get(i + 1), trees.get(i + 2)),
                    (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
                        if a.as_char() == ':' && b.as_char() == ':'
                );
                match trees.get(i + 3) {
                    Some(TokenTree::Ident(name)) if colons && name == "ops" => {
                        if let Some(TokenTree::Ident(op)) = trees.get(i + 6) {
                            ops.insert(op.to_string());
                        }
                    }
                    Some(TokenTree::Ident(name)) if colons => {
                        names.insert(name.to_string());
                    }
                    Some(TokenTree::Group(group)) if colons => {
                        let mut first = true;
                        for inner in group.stream() {
                            match inner {
                                TokenTree::Ident(name) if first => {
                                    names.insert(name.to_string());
                                    first = false;
                                }
                                TokenTree::Punct(p) if p.as_char() == ',' => first = true,
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            TokenTree::Group(group) => private_names(group.stream(), names, ops),
            _ => {}
        }
    }
}
