//! Warnings about a body with a hidden `return` are the plain body's: the
//! unreachable tail, the unused parameter.
#![deny(unreachable_code, unused_variables)]

use lastwords::exit_path;

macro_rules! fail {
    ($m:expr) => {
        return Err(String::from($m))
    };
}

#[exit_path]
fn hidden(n: u32) -> Result<u32, String> {
    fail!("always");
    Ok(1)
}

#[exit_path]
fn unused(n: u32, m: u32) -> Result<u32, String> {
    if m > 1 {
        fail!("big");
    }
    Ok(m)
}

#[exit_path]
async fn unused_async(n: u32, m: u32) -> Result<u32, String> {
    if m > 1 {
        fail!("big");
    }
    Ok(m)
}

fn main() {}
