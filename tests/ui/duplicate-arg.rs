#[lastwords::exit_path(level = "debug", level = "info")]
fn run() {}

fn main() {}
