#[lastwords::exit_path]
struct Config {
    path: String,
}

fn main() {}
