use pipeline::prelude::*;

fn main() {
    // The chain has a macro error (a source after `>>`) after `map`;
    // `map`'s closure is still type-checked, so its own mistake is reported
    // too, as an IDE would show it.
    let input = std::io::empty();
    let _ = pipeline! {
        iter(vec!["a".to_string()]) >> map(|s| s.lenn()) >> lines(input) >> discard();
    };
}
