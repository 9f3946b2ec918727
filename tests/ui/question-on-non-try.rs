#[lastwords::exit_path]
pub fn run(n: u32) -> Option<u32> {
    let m = n?;
    Some(m)
}

fn main() {}
