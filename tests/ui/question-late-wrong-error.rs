#[derive(Debug)]
pub struct MyErr;

fn take(n: u8) -> u32 {
    n.into()
}

#[lastwords::exit_path]
pub fn parse(s: &str) -> Result<u32, MyErr> {
    let n = take(s.parse()?);
    Ok(n)
}

fn main() {}
