#[derive(Debug)]
pub struct MyErr;


pub fn first(v: &[u32]) -> Result<u32, MyErr> {
    let n = v.first()?;
    Ok(*n)
}

fn main() {}
