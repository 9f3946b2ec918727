#[lastwords::exit_path(label)]
fn run() {}

fn main() {}
