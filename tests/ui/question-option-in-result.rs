#[derive(Debug)]
pub struct MyErr;

#[lastwords::exit_path]
pub fn first(v: &[u32]) -> Result<u32, MyErr> {
    let n = v.first()?;
    Ok(*n)
}

fn main() {}
