#[lastwords::exit_path(err_level = "loud")]
fn run() {}

fn main() {}
