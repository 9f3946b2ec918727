//! Warnings about a body with a hidden `return` are the plain body's: the
//! unreachable tail, the unused parameter.
#![deny(unreachable_code, unused_variables)]



macro_rules! fail {
    ($m:expr) => {
        return Err(String::from($m))
    };
}


fn hidden(n: u32) -> Result<u32, String> {
    fail!("always");
    Ok(1)
}


fn unused(n: u32, m: u32) -> Result<u32, String> {
    if m > 1 {
        fail!("big");
    }
    Ok(m)
}


async fn unused_async(n: u32, m: u32) -> Result<u32, String> {
    if m > 1 {
        fail!("big");
    }
    Ok(m)
}

fn main() {}
