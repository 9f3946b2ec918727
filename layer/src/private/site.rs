//! What the expansion of `#[exit_path]` states about an annotated function
//! and its exits: plain data, read by the guard (`exit`), by the tracing
//! callsites built from it (`callsites`) and by the flight recorder's exit
//! counts. Not a stable API.

use tracing_core::{Level, LevelFilter};

/// The fields of a `fn_exit` event, in record order.
pub const FIELDS: &[&str] = &[
    "message",
    "kind",
    "fn",
    "site",
    "file",
    "line",
    "col",
    "outcome",
    "error",
    "value",
    "elapsed_us",
    "label",
    "unexpected",
];

/// What the expansion knows about the annotated function. Not a stable API.
pub struct SiteInfo {
    /// The function's name, or the `name = "..."` option.
    pub name: &'static str,
    /// True when `name` came from the `name` option (used verbatim).
    pub custom_name: bool,
    /// The type name of a fn item nested in the annotated function: its
    /// path (`crate::module::Type::method`) once the suffix is cut (see
    /// [`here`]).
    pub here: fn() -> &'static str,
    /// Source file of the function.
    pub file: &'static str,
    /// Its module, the records' target.
    pub module: &'static str,
    /// Line of the function's name (used for `unwind` and `cancelled`).
    pub line: u32,
    /// Column of the function's name.
    pub col: u32,
    /// The `label` option.
    pub label: Option<&'static str>,
    /// The `unexpected` option.
    pub unexpected: bool,
    /// True for an `async fn`: an unfinished drop means cancellation.
    pub is_async: bool,
    /// The levels of the `ok`, `err` and `cancelled` records.
    pub levels: [Level; 3],
    /// The most severe of the three levels.
    pub gate_level: LevelFilter,
    /// The markers in the body, by index (see [`ExitGuard::mark`](super::exit::ExitGuard::mark)).
    pub marks: &'static [Mark],
}

/// The layout of [`ExitSite::new`](super::exit::ExitSite::new)'s `flags`,
/// which the expansion writes as one integer literal. Not a stable API.
///
/// ```text
/// bit 0        the `name` option was given (CUSTOM_NAME)
/// bit 1        the `unexpected` option (UNEXPECTED)
/// bit 2        an `async fn` (ASYNC)
/// bits 4..7    the level of the `ok`/`none`/`returned` records (LEVEL_SHIFT + 0)
/// bits 8..11   the level of the `err` records (LEVEL_SHIFT + 4)
/// bits 12..15  the level of the `cancelled` records (LEVEL_SHIFT + 8)
/// bits 16..19  the most severe of the three, as a filter (LEVEL_SHIFT + 12)
/// ```
///
/// A level is 0 for `TRACE` up to 4 for `ERROR`.
pub mod flags {
    use tracing_core::{Level, LevelFilter};

    /// The `name` option was given.
    pub const CUSTOM_NAME: u32 = 1;
    /// The `unexpected` option.
    pub const UNEXPECTED: u32 = 1 << 1;
    /// An `async fn`.
    pub const ASYNC: u32 = 1 << 2;
    /// Where the first level starts; each takes 4 bits.
    pub const LEVEL_SHIFT: u32 = 4;

    /// The levels by code. The static's initializer indexes these rather
    /// than calling a function: the compiler evaluates it once per
    /// annotated function, and each call costs it more than an index.
    pub const LEVELS: [Level; 5] = [
        Level::TRACE,
        Level::DEBUG,
        Level::INFO,
        Level::WARN,
        Level::ERROR,
    ];

    /// [`LEVELS`] as filters.
    pub const FILTERS: [LevelFilter; 5] = [
        LevelFilter::TRACE,
        LevelFilter::DEBUG,
        LevelFilter::INFO,
        LevelFilter::WARN,
        LevelFilter::ERROR,
    ];
}

/// `type_name::<F>` for the item `f`: given a fn item nested in the
/// annotated function's static, the function's path, for the `fn` field.
/// A const fn, so that the nested item can have an empty body: the path is
/// computed only when a record first needs it. Not a stable API.
pub const fn here<F: Copy>(_: F) -> fn() -> &'static str {
    std::any::type_name::<F>
}

/// Which way the function left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// An explicit `return`.
    Return,
    /// A `?` that short-circuited.
    Question,
    /// The body's tail expression, or falling off its end.
    Tail,
    /// A `return` hidden inside a macro invocation.
    Macro,
    /// A panic unwinding through the function.
    Unwind,
    /// The async fn's future was dropped before it completed.
    Cancelled,
}

impl Site {
    /// The `site` field's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Site::Return => "return",
            Site::Question => "?",
            Site::Tail => "tail",
            Site::Macro => "macro",
            Site::Unwind => "unwind",
            Site::Cancelled => "cancelled",
        }
    }
}

/// A marker in the annotated function's body: where a macro invocation that
/// could hide a `return` runs (`Site::Macro`), or a `return` or tail whose
/// value the expansion leaves alone (a returned `impl Trait`, which may be a
/// closure that needs the declared signature). Not a stable API.
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    /// The site recorded if the function leaves from here unseen.
    pub site: Site,
    /// A macro that returns nothing but an `Err` (`bail!`, `ensure!`): an
    /// unseen exit from it is an error.
    pub err: bool,
    /// Its line.
    pub line: u32,
    /// Its column.
    pub col: u32,
}

impl Mark {
    /// A marker at `line:col`.
    pub const fn new(site: Site, line: u32, col: u32) -> Mark {
        Mark {
            site,
            err: false,
            line,
            col,
        }
    }

    /// A marker at a macro that returns nothing but an `Err`.
    pub const fn erring(site: Site, line: u32, col: u32) -> Mark {
        Mark {
            site,
            err: true,
            line,
            col,
        }
    }
}
