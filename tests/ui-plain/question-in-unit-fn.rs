
pub fn run(s: &str) {
    let n: u32 = s.parse()?;
    println!("{n}");
}

fn main() {}
