use pipeline::prelude::*;

struct Frame(Vec<u8>);

#[stage]
fn decode(frame: Frame) -> Result<String, std::string::FromUtf8Error> {
    String::from_utf8(frame.0)
}

fn main() {
    let _ = pipeline! {
        text = iter(vec![Frame(b"hi".to_vec())]) >> decode;
        text >> discard();
        text[errors] >> discard();
    };
}
