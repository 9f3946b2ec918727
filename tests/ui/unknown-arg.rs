#[lastwords::exit_path(levle = "debug")]
fn run() {}

fn main() {}
