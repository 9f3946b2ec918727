trait Service {
    #[lastwords::exit_path]
    fn run(&self) -> Result<(), String>;
}

fn main() {}
