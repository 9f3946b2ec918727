#[derive(Debug)]
pub struct MyErr;

#[lastwords::exit_path]
pub fn parse(s: &str) -> Result<u32, MyErr> {
    let n = s.parse::<u32>()?;
    Ok(n)
}

fn main() {}
