// Linking lastwords changes no type inference in the user's crate: these
// comparisons with an empty literal compile as they do without it (a crate
// with `impl PartialEq<Value> for u8` among its dependencies, such as
// serde_json, makes both ambiguous: E0282/E0283).

fn main() {
    // Loads the facade and, through it, the runtime and its dependencies.
    let _ = lastwords::init;
    let v: Vec<u8> = Vec::new();
    assert_eq!(v, vec![]);
    assert_eq!(&*v, &[]);
    let n: Vec<usize> = Vec::new();
    assert_eq!(n, []);
}
