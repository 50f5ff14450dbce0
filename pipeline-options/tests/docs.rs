//! The options table of `docs/dsl.md` says what the declarations say: one
//! row per declared option, in their order, with its written form, its
//! value and what it does, and no row for an option that is not declared.

use pipeline_options::DECLARATIONS;

/// The rows of the first table in the `## Options` section, each split
/// into its cells (`\|` inside a cell is a `|`).
fn option_rows() -> Vec<Vec<String>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/dsl.md");
    let docs = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let section = docs
        .split("\n## Options\n")
        .nth(1)
        .expect("docs/dsl.md has an `## Options` section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let table: Vec<&str> = section
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .collect();
    assert!(table.len() > 2, "the `## Options` section has a table");
    // The header and the separator row.
    table[2..]
        .iter()
        .map(|row| {
            let row = row.trim().trim_start_matches('|').trim_end_matches('|');
            let mut cells = vec![String::new()];
            let mut chars = row.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '\\' if chars.peek() == Some(&'|') => {
                        cells.last_mut().unwrap().push('|');
                        chars.next();
                    }
                    '|' => cells.push(String::new()),
                    c => cells.last_mut().unwrap().push(c),
                }
            }
            cells.iter().map(|cell| cell.trim().to_owned()).collect()
        })
        .collect()
}

#[test]
fn the_docs_table_lists_every_declared_option_as_declared() {
    let rows = option_rows();
    for row in &rows {
        assert_eq!(row.len(), 3, "option, value, what it does: {row:?}");
        let name = row[0]
            .trim_start_matches("`#[")
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()
            .unwrap_or_default();
        assert!(
            DECLARATIONS.iter().any(|d| d.name == name),
            "the docs list `{name}`, which is not a declared option: {row:?}"
        );
    }
    for (i, d) in DECLARATIONS.iter().enumerate() {
        let row = rows
            .iter()
            .position(|row| row[0] == format!("`{}`", d.written))
            .unwrap_or_else(|| panic!("no row for `{}` in docs/dsl.md", d.written));
        assert_eq!(row, i, "`{}` is listed in the order declared", d.name);
        assert_eq!(rows[row][1], d.value, "the value of `{}`", d.name);
        assert_eq!(rows[row][2], d.what, "what `{}` does", d.name);
    }
    assert_eq!(rows.len(), DECLARATIONS.len());
}
