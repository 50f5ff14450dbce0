//! The layout of the workspace's sources, read from disk at test time:
//!
//! - no module of a crate imports, through other modules, one that imports
//!   it (`no_import_cycles_between_modules`);
//! - a source file over 800 lines says why in its first lines
//!   (`no_file_over_800_lines_without_a_reason`);
//! - every file or directory that ARCHITECTURE.md names exists
//!   (`architecture_names_only_paths_that_exist`).
//!
//! Plain std: the sources are read as text, not parsed as Rust, so each
//! check is an approximation, written out where it is made. Run with
//! `cargo test --test layout -- --nocapture` to see what each measured.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Crates that a change in several steps is reshaping right now: their
/// import cycles, long files and missing ARCHITECTURE.md paths are printed
/// but not failed on, until the last step lands. Empty: every crate keeps
/// the rules.
const CRATES_STILL_BEING_RESHAPED: &[&str] = &[];

/// A file longer than this says why within its first [`REASON_WITHIN`]
/// lines, with a line containing `Long because` and the reason.
const MAX_LINES: usize = 800;
const REASON_WITHIN: usize = 15;

/// Directories at the root of the repository that a path in
/// ARCHITECTURE.md may start with.
const TOP_DIRS: &[&str] = &[
    "src/",
    "pipeline-runtime/",
    "pipeline-dsl/",
    "pipeline-macros/",
    "tests/",
    "benches/",
    "examples/",
    "ui-tests/",
    "fuzz/",
    "docs/",
];

/// Where a short path in ARCHITECTURE.md (`chain/head.rs`) may be rooted,
/// besides the repository's root and the directories named before it in
/// the same section.
const SOURCE_ROOTS: &[&str] = &["pipeline-runtime/src", "pipeline-dsl/src", "src"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A crate of the workspace: `dir` is its directory relative to the root
/// (`""` for the root crate), as named in `CRATES_STILL_BEING_RESHAPED`.
struct Crate {
    dir: String,
}

impl Crate {
    fn name(&self) -> &str {
        if self.dir.is_empty() {
            "pipeline"
        } else {
            &self.dir
        }
    }

    fn src(&self) -> PathBuf {
        root().join(&self.dir).join("src")
    }

    fn still_being_reshaped(&self) -> bool {
        CRATES_STILL_BEING_RESHAPED.contains(&self.dir.as_str())
    }
}

/// The root crate and the workspace's members, read from `Cargo.toml`.
fn crates() -> Vec<Crate> {
    let manifest = read(&root().join("Cargo.toml"));
    let members = manifest
        .lines()
        .find(|line| line.trim_start().starts_with("members"))
        .expect("Cargo.toml lists the workspace's members");
    let mut crates = vec![Crate { dir: String::new() }];
    crates.extend(members.split('"').skip(1).step_by(2).map(|dir| Crate {
        dir: dir.to_owned(),
    }));
    assert!(crates.len() > 1, "no members in {members:?}");
    crates
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The path of `path` relative to the repository's root, for messages.
fn shown(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Unit tests kept apart from the code they test: a file named `tests.rs`
/// or under a `tests/` directory.
fn is_test_file(relative: &Path) -> bool {
    relative.file_name().is_some_and(|name| name == "tests.rs")
        || relative
            .parent()
            .is_some_and(|dir| dir.components().any(|c| c.as_os_str() == "tests"))
}

/// The crate's source files, without the unit tests kept apart.
fn source_files(krate: &Crate) -> Vec<PathBuf> {
    let src = krate.src();
    rust_files(&src)
        .into_iter()
        .filter(|path| !is_test_file(path.strip_prefix(&src).unwrap()))
        .collect()
}

// ---------------------------------------------------------------------------
// Import cycles

/// A module's path in its crate: `["channel", "backpressure"]`; empty for
/// the crate's root.
type ModPath = Vec<String>;

fn display(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_owned()
    } else {
        module.join("::")
    }
}

/// The module of the file at `relative` (to `src/`): `lib.rs` and
/// `mod.rs` are their directory's module.
fn module_of(relative: &Path) -> ModPath {
    let mut parts: ModPath = relative
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().unwrap_or_default();
    let stem = file.trim_end_matches(".rs");
    let at_root = parts.is_empty();
    if !(stem == "mod" || (at_root && (stem == "lib" || stem == "main"))) {
        parts.push(stem.to_owned());
    }
    parts
}

/// What the dependency graph counts a module as: its first two levels
/// (`chain::fuse` for `chain::fuse::settle`).
fn truncated(module: &[String]) -> ModPath {
    module.iter().take(2).cloned().collect()
}

/// Whether one module contains the other (or they are the same), which
/// is not an import.
fn related(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// `text` with comments and the contents of string and character literals
/// blanked out, lines kept where they were.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && starts_a_literal(&chars[..i])
            && raw_string_hashes(&chars[i + 1..]).is_some()
        {
            let hashes = raw_string_hashes(&chars[i + 1..]).unwrap();
            let start = i;
            i += 2 + hashes;
            loop {
                if i >= chars.len() {
                    break;
                }
                if chars[i] == '"'
                    && chars[i + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|&&h| h == '#')
                        .count()
                        == hashes
                {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
            out.extend(chars[start..i.min(chars.len())].iter().map(|&c| blank(c)));
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && next == Some('\\') {
            // An escaped character literal: its quote, the escape's first
            // two characters, then up to its closing quote.
            out.push_str("   ");
            i += 3;
            while i < chars.len() && chars[i] != '\'' {
                out.push(' ');
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            out.push_str("   ");
            i += 3;
        } else {
            // Code, or a lifetime's quote.
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Whether a literal's prefix (`r`) that follows `before` is not the end of
/// an identifier (`br` is a raw byte string).
fn starts_a_literal(before: &[char]) -> bool {
    match before {
        [.., b, 'b'] => !is_ident_char(*b),
        ['b'] | [] => true,
        [.., c] => !is_ident_char(*c),
    }
}

/// The number of `#`s of a raw string starting after its `r`, if it is one.
fn raw_string_hashes(after_r: &[char]) -> Option<usize> {
    let hashes = after_r.iter().take_while(|&&c| c == '#').count();
    (after_r.get(hashes) == Some(&'"')).then_some(hashes)
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `code` with every item marked `#[cfg(test)]` blanked out (the
/// attribute, any attributes after it, and the item up to its `;` or
/// closing brace), or all of it for a file marked `#![cfg(test)]`.
fn without_test_items(code: &str) -> String {
    const MARK: &str = "#[cfg(test)]";
    if code.contains("#![cfg(test)]") {
        return code.replace(|c| c != '\n', " ");
    }
    let mut bytes = code.as_bytes().to_vec();
    let mut from = 0;
    while let Some(at) = code[from..].find(MARK).map(|at| from + at) {
        let mut i = at + MARK.len();
        // Further attributes are bracketed, so skipped with the item.
        let (mut braces, mut others) = (0i32, 0i32);
        while i < bytes.len() {
            match bytes[i] {
                b'[' | b'(' => others += 1,
                b']' | b')' => others -= 1,
                b'{' => braces += 1,
                b'}' => {
                    braces -= 1;
                    if braces == 0 && others == 0 {
                        i += 1;
                        break;
                    }
                }
                b';' if braces == 0 && others == 0 => {
                    i += 1;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        for byte in &mut bytes[at..i.min(code.len())] {
            if *byte != b'\n' {
                *byte = b' ';
            }
        }
        from = i.min(code.len());
    }
    // Only ASCII bytes were replaced, by ASCII spaces.
    String::from_utf8(bytes).expect("still UTF-8")
}

/// A path a file refers to, starting with `crate`, `super` or `self`, and
/// the line it is on.
struct Reference {
    line: usize,
    path: Vec<String>,
}

/// The paths `code` names: in `use` trees (`use crate::{a, b::c}` names
/// `crate::a` and `crate::b::c`) and in code (`crate::a::f()`,
/// `super::X`). `$crate` in a macro counts as `crate`.
fn references(code: &str) -> Vec<Reference> {
    let code = code.replace("$crate", " crate");
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let mut found = Vec::new();
    let mut rest = code.clone().into_bytes();

    // `use` trees, each blanked out once read.
    let mut from = 0;
    while let Some(at) = find_word(&code, "use", from) {
        let start = at + 3;
        let Some(end) = code[start..].find(';').map(|end| start + end) else {
            break;
        };
        let tokens = tokenize(&code[start..end]);
        let mut pos = 0;
        for path in use_tree(&tokens, &mut pos, Vec::new()) {
            if matches!(
                path.first().map(String::as_str),
                Some("crate" | "super" | "self")
            ) {
                found.push(Reference {
                    line: line_of(at),
                    path,
                });
            }
        }
        for byte in &mut rest[at..end] {
            if *byte != b'\n' {
                *byte = b' ';
            }
        }
        from = end;
    }

    // Paths in code.
    let rest = String::from_utf8(rest).expect("still UTF-8");
    for head in ["crate", "super"] {
        let mut from = 0;
        while let Some(at) = find_word(&rest, head, from) {
            from = at + head.len();
            if !rest[from..].starts_with("::") || rest[..at].ends_with("::") {
                continue;
            }
            let mut path = vec![head.to_owned()];
            let mut end = from;
            while rest[end..].starts_with("::") {
                let ident: String = rest[end + 2..]
                    .chars()
                    .take_while(|&c| is_ident_char(c))
                    .collect();
                if ident.is_empty() {
                    break;
                }
                end += 2 + ident.len();
                path.push(ident);
            }
            found.push(Reference {
                line: line_of(at),
                path,
            });
            from = end;
        }
    }
    found
}

/// The next `word` in `text` from `from` that is a whole word.
fn find_word(text: &str, word: &str, mut from: usize) -> Option<usize> {
    while let Some(at) = text[from..].find(word).map(|at| from + at) {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        if !before.is_some_and(is_ident_char) && !after.is_some_and(is_ident_char) {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

/// The tokens of a `use` tree: identifiers and `::`, `{`, `}`, `,`, `*`.
fn tokenize(tree: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = tree.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if is_ident_char(c) {
            let ident: String = chars[i..]
                .iter()
                .take_while(|&&c| is_ident_char(c))
                .collect();
            i += ident.chars().count();
            tokens.push(ident);
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            tokens.push("::".to_owned());
            i += 2;
        } else {
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
            i += 1;
        }
    }
    tokens
}

/// The paths of the `use` tree at `tokens[*pos..]`, under `prefix`.
fn use_tree(tokens: &[String], pos: &mut usize, prefix: Vec<String>) -> Vec<Vec<String>> {
    let mut path = prefix;
    loop {
        match tokens.get(*pos).map(String::as_str) {
            Some("{") => {
                *pos += 1;
                let mut paths = Vec::new();
                while !matches!(tokens.get(*pos).map(String::as_str), Some("}") | None) {
                    paths.extend(use_tree(tokens, pos, path.clone()));
                    if tokens.get(*pos).map(String::as_str) == Some(",") {
                        *pos += 1;
                    }
                }
                *pos += 1;
                return paths;
            }
            Some("*") => {
                *pos += 1;
                return vec![path];
            }
            Some("::") => *pos += 1,
            Some(ident) if is_ident_char(ident.chars().next().unwrap()) => {
                *pos += 1;
                // `self` in a group is the group's own path.
                if ident != "self" || path.is_empty() {
                    path.push(ident.to_owned());
                }
                if tokens.get(*pos).map(String::as_str) == Some("as") {
                    *pos += 2;
                }
                if tokens.get(*pos).map(String::as_str) != Some("::") {
                    return vec![path];
                }
            }
            // `pub(crate) use`'s visibility and anything unexpected.
            _ => {
                *pos += 1;
                if *pos >= tokens.len() {
                    return vec![path];
                }
            }
        }
    }
}

/// The module `path`, named in a file of module `from`, refers to: its
/// longest prefix that is a module of the crate. `None` for a path into
/// another crate.
fn resolve(
    from: &[String],
    path: &[String],
    modules: &BTreeSet<ModPath>,
    aliases: &BTreeMap<ModPath, ModPath>,
) -> Option<ModPath> {
    let (mut module, mut rest) = match path.first()?.as_str() {
        "crate" => (Vec::new(), &path[1..]),
        "self" => (from.to_vec(), &path[1..]),
        "super" => {
            let mut module = from.to_vec();
            let mut rest = path;
            while rest.first().is_some_and(|s| s == "super") {
                module.pop()?;
                rest = &rest[1..];
            }
            (module, rest)
        }
        _ => return None,
    };
    while let Some(segment) = rest.first() {
        let mut next = module.clone();
        next.push(segment.clone());
        let next = aliases.get(&next).cloned().unwrap_or(next);
        if !modules.contains(&next) {
            break;
        }
        module = next;
        rest = &rest[1..];
    }
    Some(module)
}

/// Modules declared under another name than their file's with
/// `#[path = ".."] mod name;`: the declared path to the file's.
fn path_aliases(files: &[(PathBuf, ModPath, String)], src: &Path) -> BTreeMap<ModPath, ModPath> {
    let mut aliases = BTreeMap::new();
    for (file, module, code) in files {
        let mut lines = code.lines();
        while let Some(line) = lines.next() {
            let Some(target) = line
                .trim()
                .strip_prefix("#[path = \"")
                .and_then(|rest| rest.strip_suffix("\"]"))
            else {
                continue;
            };
            let Some(name) = lines.by_ref().find_map(|line| {
                let line = line.trim();
                let declared = line.strip_prefix("pub ").unwrap_or(line);
                let name = declared.strip_prefix("mod ")?.strip_suffix(';')?;
                Some(name.trim().to_owned())
            }) else {
                continue;
            };
            let target = file.parent().unwrap().join(target);
            if let Ok(relative) = target.strip_prefix(src) {
                let mut declared = module.clone();
                declared.push(name);
                aliases.insert(declared, module_of(relative));
            }
        }
    }
    aliases
}

/// An import from one module into another: the first place it is made.
type Edges = BTreeMap<(String, String), String>;

/// The modules of `krate` (as [`truncated`]) and the imports between
/// them, ignoring containment.
fn import_graph(krate: &Crate) -> (BTreeSet<String>, Edges) {
    let src = krate.src();
    let files: Vec<(PathBuf, ModPath, String)> = source_files(krate)
        .into_iter()
        .map(|path| {
            let module = module_of(path.strip_prefix(&src).unwrap());
            let text = read(&path);
            (path, module, text)
        })
        .collect();
    let modules: BTreeSet<ModPath> = files.iter().map(|(_, m, _)| m.clone()).collect();
    let aliases = path_aliases(&files, &src);
    let mut nodes = BTreeSet::new();
    let mut edges = Edges::new();
    for (path, module, text) in &files {
        let from = truncated(module);
        nodes.insert(display(&from));
        let code = without_test_items(&code_only(text));
        for reference in references(&code) {
            let Some(target) = resolve(module, &reference.path, &modules, &aliases) else {
                continue;
            };
            let to = truncated(&target);
            if related(&from, &to) {
                continue;
            }
            edges
                .entry((display(&from), display(&to)))
                .or_insert_with(|| format!("{}:{}", shown(path), reference.line));
        }
    }
    (nodes, edges)
}

/// The strongly connected components of the graph with more than one
/// node (Tarjan's algorithm).
fn cycles(nodes: &BTreeSet<String>, edges: &Edges) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        next: BTreeMap<&'a str, Vec<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, node: &'a str) {
            let index = self.index.len();
            self.index.insert(node, index);
            self.low.insert(node, index);
            self.stack.push(node);
            self.on_stack.insert(node);
            for next in self.next.get(node).cloned().unwrap_or_default() {
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = Vec::new();
                loop {
                    let member = self.stack.pop().unwrap();
                    self.on_stack.remove(member);
                    component.push(member.to_owned());
                    if member == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        next.entry(from).or_default().push(to);
    }
    let mut tarjan = Tarjan {
        next,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in nodes {
        if !tarjan.index.contains_key(node.as_str()) {
            tarjan.visit(node);
        }
    }
    tarjan.found.sort();
    tarjan.found
}

/// For each crate, a graph of its modules, each a file's module path cut
/// to two levels (`channel::backpressure`, `chain::fuse`); an edge from
/// A to B when a file of A, outside `#[cfg(test)]` items and unit-test
/// files, names `crate::B..`, or `super::..` resolving into B, in a `use`
/// or in code. A module and its ancestors or descendants contain each
/// other, which is not an import. Every cycle is reported, with where
/// each of its imports is made.
///
/// Approximations: `super` inside an inline module resolves from its
/// file's module, and a path through a re-export counts as an import of
/// the module that re-exports.
#[test]
fn no_import_cycles_between_modules() {
    let mut failures = Vec::new();
    for krate in crates() {
        let (nodes, edges) = import_graph(&krate);
        let found = cycles(&nodes, &edges);
        let tolerated = krate.still_being_reshaped() && !found.is_empty();
        println!(
            "{}: {} modules, {} imports between them, {} cycle(s){}",
            krate.name(),
            nodes.len(),
            edges.len(),
            found.len(),
            if tolerated {
                " (tolerated: in CRATES_STILL_BEING_RESHAPED)"
            } else {
                ""
            },
        );
        for component in &found {
            let mut report = format!("  {}: cycle of {}\n", krate.name(), component.join(", "));
            for ((from, to), place) in &edges {
                if component.contains(from) && component.contains(to) {
                    report.push_str(&format!("    {from} -> {to}  ({place})\n"));
                }
            }
            print!("{report}");
            if !krate.still_being_reshaped() {
                failures.push(report);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "import cycles between modules:\n{}",
        failures.concat()
    );
}

// ---------------------------------------------------------------------------
// Long files

/// Whether `line` says why its file is long: `Long because` and a reason.
fn gives_a_reason(line: &str) -> bool {
    line.split_once("Long because")
        .is_some_and(|(_, reason)| reason.trim_matches(|c: char| !c.is_alphanumeric()).len() >= 10)
}

/// Every source file of the crates (not their tests, benches or examples,
/// nor unit tests kept apart) over 800 lines has, within its first 15
/// lines, a line with `Long because` and why.
#[test]
fn no_file_over_800_lines_without_a_reason() {
    let mut sizes = Vec::new();
    let mut failures = Vec::new();
    for krate in crates() {
        for path in source_files(&krate) {
            let text = read(&path);
            let lines = text.lines().count();
            sizes.push((lines, shown(&path)));
            if lines <= MAX_LINES {
                continue;
            }
            let reason = text.lines().take(REASON_WITHIN).find(|l| gives_a_reason(l));
            match reason {
                Some(reason) => println!("{} ({lines} lines): {}", shown(&path), reason.trim()),
                None if krate.still_being_reshaped() => println!(
                    "{} ({lines} lines) gives no reason (tolerated: in CRATES_STILL_BEING_RESHAPED)",
                    shown(&path)
                ),
                None => failures.push(format!("{} ({lines} lines)", shown(&path))),
            }
        }
    }
    sizes.sort_by(|a, b| b.cmp(a));
    println!("{} source files; the five largest:", sizes.len());
    for (lines, path) in sizes.iter().take(5) {
        println!("  {lines:>5}  {path}");
    }
    assert!(
        failures.is_empty(),
        "files over {MAX_LINES} lines without a `Long because ..` line within their first \
         {REASON_WITHIN}: split them, or say why they are long:\n  {}",
        failures.join("\n  ")
    );
}

// ---------------------------------------------------------------------------
// ARCHITECTURE.md

/// A path written in ARCHITECTURE.md, and the line it starts on.
struct Named {
    line: usize,
    path: String,
}

/// Whether a code span is a path: a file (`.rs`), a directory (`/`) or
/// anything under one of the repository's top directories.
fn is_path(span: &str) -> bool {
    !span.is_empty()
        && !span.contains(char::is_whitespace)
        && !span.contains("::")
        && (span.ends_with(".rs")
            || span.ends_with('/')
            || TOP_DIRS.iter().any(|d| span.starts_with(d)))
}

/// The sections of ARCHITECTURE.md (each heading starts one), each with
/// its heading and the paths written in backticks in it, outside fenced
/// code blocks.
fn sections(markdown: &str) -> Vec<(String, Vec<Named>)> {
    let mut sections = vec![(String::new(), Vec::new())];
    let mut prose = String::new();
    let mut fenced = false;
    let flush = |prose: &mut String, sections: &mut Vec<(String, Vec<Named>)>, first: usize| {
        let mut parts = prose.split('`');
        let mut line = first;
        while let Some(text) = parts.next() {
            line += text.matches('\n').count();
            let Some(span) = parts.next() else { break };
            if is_path(span.trim()) {
                sections.last_mut().unwrap().1.push(Named {
                    line,
                    path: span.trim().to_owned(),
                });
            }
            line += span.matches('\n').count();
        }
        prose.clear();
    };
    let mut first = 1;
    for (number, line) in markdown.lines().enumerate() {
        let number = number + 1;
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            flush(&mut prose, &mut sections, first);
            first = number + 1;
            continue;
        }
        if fenced {
            first = number + 1;
            continue;
        }
        if line.starts_with('#') {
            flush(&mut prose, &mut sections, first);
            sections.push((line.to_owned(), Vec::new()));
            first = number;
        }
        prose.push_str(line);
        prose.push('\n');
    }
    flush(&mut prose, &mut sections, first);
    sections
}

/// Where `path` exists: under the root, a source root, or a directory
/// named before it in its section (`head.rs` after `chain/`). A path with
/// a placeholder (`transform/<name>.rs`, `ui-tests/fail/*.rs`) exists if
/// the directory it is in does.
fn locate(path: &str, named_before: &[PathBuf]) -> Option<PathBuf> {
    let path = match path.find(['<', '*']) {
        Some(at) => &path[..path[..at].rfind('/')? + 1],
        None => path,
    };
    let bases = std::iter::once(root().to_path_buf())
        .chain(SOURCE_ROOTS.iter().map(|dir| root().join(dir)))
        .chain(named_before.iter().rev().cloned());
    for base in bases {
        let candidate = base.join(path);
        let found = if path.ends_with('/') {
            candidate.is_dir()
        } else {
            candidate.exists()
        };
        if found {
            return Some(candidate);
        }
    }
    None
}

/// Every path ARCHITECTURE.md writes in backticks (a `.rs` file, a
/// directory ending in `/`, or anything under a top directory such as
/// `pipeline-runtime/` or `tests/`) exists: from the root, from a crate's
/// `src/` (`chain/head.rs`), or from a directory named earlier in the same
/// section (`settle.rs` after `fuse/`).
#[test]
fn architecture_names_only_paths_that_exist() {
    let markdown = read(&root().join("ARCHITECTURE.md"));
    let (mut checked, mut missing, mut tolerated) = (0, Vec::new(), Vec::new());
    for (heading, paths) in sections(&markdown) {
        // A section about a crate being reshaped names its files as they
        // were; so does a path under that crate's directory.
        let reshaped_section = CRATES_STILL_BEING_RESHAPED
            .iter()
            .any(|dir| heading.contains(&format!("`{dir}/")));
        let mut named_before: Vec<PathBuf> = Vec::new();
        for named in paths {
            checked += 1;
            match locate(&named.path, &named_before) {
                Some(found) => {
                    let dir = if found.is_dir() {
                        found
                    } else {
                        found.parent().unwrap().to_path_buf()
                    };
                    if dir.join("src").is_dir() {
                        named_before.push(dir.join("src"));
                    }
                    named_before.push(dir);
                }
                None => {
                    let reshaped = reshaped_section
                        || CRATES_STILL_BEING_RESHAPED
                            .iter()
                            .any(|dir| named.path.starts_with(&format!("{dir}/")));
                    let line = format!("ARCHITECTURE.md:{}: `{}`", named.line, named.path);
                    if reshaped {
                        tolerated.push(line);
                    } else {
                        missing.push(line);
                    }
                }
            }
        }
    }
    println!(
        "ARCHITECTURE.md names {checked} paths: {} found, {} missing, {} of them tolerated \
         (in CRATES_STILL_BEING_RESHAPED)",
        checked - missing.len() - tolerated.len(),
        missing.len() + tolerated.len(),
        tolerated.len(),
    );
    for line in &missing {
        println!("  missing: {line}");
    }
    for line in &tolerated {
        println!("  missing (tolerated): {line}");
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names paths that do not exist:\n  {}",
        missing.join("\n  ")
    );
}
