#[lastwords::exit_path]
#[lastwords::exit_path(level = "debug")]
fn twice() -> u32 {
    1
}

fn main() {}
