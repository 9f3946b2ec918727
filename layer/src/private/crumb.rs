//! The `fn` field of a `crumb!` record: the function the macro sits in.

/// The path of the function enclosing a `crumb!`, from the type name of a
/// marker fn item the expansion declares there:
/// `app::Conn::run::{{closure}}::__lastwords_here` -> `app::Conn::run`.
/// Closure and async-block levels are dropped, so a crumb inside a closure
/// or an `async fn` names the function the user wrote.
pub fn enclosing_fn(marker: &'static str) -> &'static str {
    let mut path = marker.rsplit_once("::").map_or(marker, |(head, _)| head);
    while let Some(outer) = path.strip_suffix("::{{closure}}") {
        path = outer;
    }
    path
}

#[cfg(test)]
mod tests {
    use super::enclosing_fn;

    #[test]
    fn names_the_function_the_user_wrote() {
        fn __lastwords_here() {}
        let here = std::any::type_name_of_val(&__lastwords_here);
        assert_eq!(
            enclosing_fn(here),
            "lastwords_layer::private::crumb::tests::names_the_function_the_user_wrote"
        );
        let closure = || {
            fn __lastwords_here() {}
            std::any::type_name_of_val(&__lastwords_here)
        };
        assert_eq!(enclosing_fn(closure()), enclosing_fn(here));
        assert_eq!(
            enclosing_fn("<app::S as app::T>::run::{{closure}}::{{closure}}::__lastwords_here"),
            "<app::S as app::T>::run"
        );
        assert_eq!(enclosing_fn("odd"), "odd");
    }
}
