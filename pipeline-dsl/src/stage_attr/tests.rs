//! `#[stage]`'s expansion, read as text.

use super::*;

/// The expansion as text, without spaces, and the messages of its
/// `compile_error!`s.
fn expand(args: TokenStream, item: TokenStream) -> (String, Vec<String>) {
    let out = expand_stage(args, item).to_string();
    let messages = out
        .split("compile_error !")
        .skip(1)
        .filter_map(|rest| rest.split('"').nth(1).map(str::to_owned))
        .collect();
    (out.replace(' ', ""), messages)
}

#[test]
fn an_item_by_mut_reference_says_to_take_it_by_value_and_return_it() {
    let (out, errors) = expand(
        quote!(),
        quote!(
            fn normalize(order: &mut Order) {}
        ),
    );
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains(
            "take `mut order: Order` and return it: `fn normalize(mut order: Order) -> Order`"
        ),
        "{errors:#?}"
    );
    // The stage is still there, taking anything and passing it on, so
    // that pipelines using it report nothing more.
    assert!(
        out.contains(
            "impl<__PipelineIn>::pipeline::Stage<__PipelineIn>fornormalize{typeOut=__PipelineIn;"
        ),
        "{out}"
    );
}

#[test]
fn a_rejected_stage_outputs_its_return_type_when_it_can_be_named() {
    for (item, out_type) in [
        (
            quote!(
                fn len(x: &str) -> usize {
                    x.len()
                }
            ),
            "typeOut=usize;",
        ),
        (
            quote!(
                fn add(a: u64, b: u64) -> u64 {
                    a + b
                }
            ),
            "typeOut=u64;",
        ),
        (
            quote!(
                fn show<T: Debug>(x: T) -> String {
                    todo!()
                }
            ),
            "typeOut=String;",
        ),
        // Its return type names the generic parameter: the item is
        // passed on.
        (
            quote!(
                fn same<T>(x: T) -> T {
                    x
                }
            ),
            "typeOut=__PipelineIn;",
        ),
        (
            quote!(
                fn parse(x: &str) -> Result<u64, E> {
                    todo!()
                }
            ),
            "typeOut=<Result<u64,E>as::pipeline::__private::Fallible>::Ok;",
        ),
    ] {
        let (out, errors) = expand(quote!(), item);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(out.contains(out_type), "{out_type} in {out}");
    }
}

#[test]
fn a_misspelt_role_is_read_as_the_role() {
    let (out, errors) = expand(
        quote!(sinkk),
        quote!(
            fn print(x: u64) {}
        ),
    );
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(out.contains("IsSinkforprint"), "{out}");
}
