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

/// What the expansion knows about the annotated function, read from the
/// string it passes at each call (see [`SiteInfo::parse`]) the first time a
/// call could record or is counted. Not a stable API.
pub struct SiteInfo {
    /// The function's name, or the `name = "..."` option.
    pub name: &'static str,
    /// True when `name` came from the `name` option (used verbatim).
    pub custom_name: bool,
    /// `type_name` of a unit struct `Here` nested in the annotated
    /// function: its path (`crate::module::Type::method`) once the suffix
    /// is cut.
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

impl SiteInfo {
    /// Read from the expansion's description of the function, made by
    /// `concat!` at compile time: one string literal, the cheapest thing
    /// for the compiler to check and evaluate per annotated function.
    ///
    /// ```text
    /// FILE \0 MODULE \0 NAME \0 LINE \0 COL \0 FLAGS \0 MARKS \0 LABEL
    /// ```
    ///
    /// `FLAGS` is laid out as [`flags`] says; `MARKS` is a comma-separated
    /// list of `<kind><line>:<col>`, kind `T` (a tail), `R` (a `return`),
    /// `M` (a macro) or `E` (a macro that returns only an `Err`); `LABEL`,
    /// the rest of the string, is there when `FLAGS` has [`flags::LABEL`].
    /// A malformed field reads as empty or 0: never a panic, whatever the
    /// string.
    pub fn parse(raw: &'static str, here: fn() -> &'static str) -> SiteInfo {
        use flags::{ASYNC, CUSTOM_NAME, FILTERS, LABEL, LEVELS, LEVEL_SHIFT, UNEXPECTED};
        let mut fields = raw.splitn(8, '\0');
        let mut next = || fields.next().unwrap_or("");
        let (file, module, name) = (next(), next(), next());
        let (line, col) = (next().parse().unwrap_or(0), next().parse().unwrap_or(0));
        let flags: u32 = next().parse().unwrap_or(0);
        let marks = next();
        let label = next();
        let level = |i: u32| LEVELS[((flags >> (LEVEL_SHIFT + 4 * i)) & 0xf).min(4) as usize];
        let marks: Vec<Mark> = marks
            .split(',')
            .filter(|m| !m.is_empty())
            .map(Mark::parse)
            .collect();
        SiteInfo {
            name,
            custom_name: flags & CUSTOM_NAME != 0,
            here,
            file,
            module,
            line,
            col,
            label: (flags & LABEL != 0).then_some(label),
            unexpected: flags & UNEXPECTED != 0,
            is_async: flags & ASYNC != 0,
            levels: [level(0), level(1), level(2)],
            gate_level: FILTERS[((flags >> (LEVEL_SHIFT + 12)) & 0xf).min(4) as usize],
            // Once per annotated function, for the life of the process.
            marks: if marks.is_empty() { &[] } else { marks.leak() },
        }
    }

    /// What a function whose description was never read shows; not
    /// reached in practice (a guard that records read it first).
    pub const UNKNOWN: SiteInfo = SiteInfo {
        name: "",
        custom_name: true,
        here: unknown_here,
        file: "",
        module: "",
        line: 0,
        col: 0,
        label: None,
        unexpected: false,
        is_async: false,
        levels: [Level::INFO, Level::ERROR, Level::WARN],
        gate_level: LevelFilter::ERROR,
        marks: &[],
    };
}

fn unknown_here() -> &'static str {
    ""
}

/// The layout of the `FLAGS` field of [`SiteInfo::parse`]'s string, which
/// the expansion writes as one integer. Not a stable API.
///
/// ```text
/// bit 0        the `name` option was given (CUSTOM_NAME)
/// bit 1        the `unexpected` option (UNEXPECTED)
/// bit 2        an `async fn` (ASYNC)
/// bit 3        the `label` option was given (LABEL)
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
    /// The `label` option was given.
    pub const LABEL: u32 = 1 << 3;
    /// Where the first level starts; each takes 4 bits.
    pub const LEVEL_SHIFT: u32 = 4;

    /// The levels by code.
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
    /// One marker of [`SiteInfo::parse`]'s string: `M12:5`.
    fn parse(text: &str) -> Mark {
        let (kind, rest) = text.split_at(text.chars().next().map_or(0, char::len_utf8));
        let (line, col) = rest.split_once(':').unwrap_or((rest, ""));
        let site = match kind {
            "T" => Site::Tail,
            "R" => Site::Return,
            _ => Site::Macro,
        };
        Mark {
            site,
            err: kind == "E",
            line: line.parse().unwrap_or(0),
            col: col.parse().unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn here() -> &'static str {
        "app::Conn::run::Here"
    }

    #[test]
    fn a_description_reads_back_as_written() {
        // file, module, name, line, col, flags (label, async, levels
        // info/error/warn, gate error), markers, label with a NUL in it.
        let flags: u32 = (1 << 3) | (1 << 2) | (2 << 4) | (4 << 8) | (3 << 12) | (4 << 16);
        let flags = flags.to_string();
        let fields = [
            "src/conn.rs",
            "app::conn",
            "run",
            "12",
            "5",
            &flags,
            "M14:9,E15:13,T20:5",
            "db\0ops",
        ];
        let raw: &'static str = fields.join("\0").leak();
        let info = SiteInfo::parse(raw, here);
        assert_eq!(
            (info.name, info.file, info.module, info.line, info.col),
            ("run", "src/conn.rs", "app::conn", 12, 5)
        );
        assert!(info.is_async && !info.unexpected && !info.custom_name);
        assert_eq!(info.label, Some("db\0ops"));
        assert_eq!(info.levels, [Level::INFO, Level::ERROR, Level::WARN]);
        assert_eq!(info.gate_level, LevelFilter::ERROR);
        let marks: Vec<(Site, bool, u32, u32)> = info
            .marks
            .iter()
            .map(|m| (m.site, m.err, m.line, m.col))
            .collect();
        assert_eq!(
            marks,
            [
                (Site::Macro, false, 14, 9),
                (Site::Macro, true, 15, 13),
                (Site::Tail, false, 20, 5)
            ]
        );
        assert_eq!((info.here)(), "app::Conn::run::Here");
    }

    #[test]
    fn a_malformed_description_reads_as_empty_fields() {
        let info = SiteInfo::parse("", here);
        assert_eq!((info.name, info.file, info.line, info.col), ("", "", 0, 0));
        assert!(info.marks.is_empty() && info.label.is_none());
        // Numbers that do not parse read as 0: level codes 0 are TRACE.
        let info = SiteInfo::parse("\0\0\0x\0y\0z\0Q\0", here);
        assert_eq!((info.line, info.col), (0, 0));
        assert_eq!(info.levels, [Level::TRACE; 3]);
        let marks: Vec<(Site, u32, u32)> =
            info.marks.iter().map(|m| (m.site, m.line, m.col)).collect();
        assert_eq!(marks, [(Site::Macro, 0, 0)]);
        // Level codes above 4 read as ERROR; empty markers are skipped.
        let raw: &'static str = ["", "", "f", "", "", "999999999", ",,M:", ""]
            .join("\0")
            .leak();
        let info = SiteInfo::parse(raw, here);
        assert_eq!(info.gate_level, LevelFilter::ERROR);
        assert_eq!(info.marks.len(), 1);
        let raw: &'static str = ["a.rs", "m", "f", "1", "2", "0", "", ""].join("\0").leak();
        let info = SiteInfo::parse(raw, here);
        assert_eq!(info.label, None);
        assert!(info.marks.is_empty());
    }
}
