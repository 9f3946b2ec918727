//! The crates whose test suites must pass with every function annotated,
//! at pinned versions, chosen for different styles of code.

/// One crate from crates.io.
pub struct Crate {
    /// Its name on crates.io.
    pub name: &'static str,
    /// The exact version.
    pub version: &'static str,
    /// Why it is here: the style of code it exercises.
    pub style: &'static str,
    /// Extra arguments to `cargo test` (features its suite needs).
    pub test_args: &'static [&'static str],
}

/// Every crate the harness runs, in the order it runs them.
pub const CRATES: &[Crate] = &[
    Crate {
        name: "either",
        version: "1.19.0",
        style: "small enum type, macro-generated delegation, many trait impls",
        test_args: &[],
    },
    Crate {
        name: "semver",
        version: "1.0.28",
        style: "hand-written parser, Result-returning fns with `?`, unsafe repr tricks",
        test_args: &[],
    },
    Crate {
        name: "httparse",
        version: "1.10.1",
        style: "no_std zero-copy parser, SIMD with #[target_feature], early returns in macros",
        test_args: &[],
    },
    Crate {
        name: "memchr",
        version: "2.8.3",
        style: "text search, unsafe SIMD, #[target_feature] and #[inline(always)]",
        test_args: &[],
    },
    Crate {
        name: "unicode-segmentation",
        version: "1.13.3",
        style: "text processing, iterators over &str with lifetimes",
        test_args: &[],
    },
    Crate {
        name: "smallvec",
        version: "1.15.1",
        style: "collection built on unsafe code, no_std, drop-order sensitive",
        test_args: &[],
    },
    Crate {
        name: "indexmap",
        version: "2.14.2",
        style: "generic collection, closures returned through impl Fn, no_std",
        test_args: &[],
    },
    Crate {
        name: "walkdir",
        version: "2.5.1",
        style: "filesystem walker, io::Result everywhere, iterator state machine",
        test_args: &[],
    },
    Crate {
        name: "itertools",
        version: "0.15.0",
        style: "iterator adaptors, heavy generics, impl Trait returns",
        test_args: &[],
    },
];
