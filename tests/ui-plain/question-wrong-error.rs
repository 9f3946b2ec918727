#[derive(Debug)]
pub struct MyErr;


pub fn parse(s: &str) -> Result<u32, MyErr> {
    let n = s.parse::<u32>()?;
    Ok(n)
}

fn main() {}
