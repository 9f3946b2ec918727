//! The three tracing callsites of one annotated function (`ok`, `err`,
//! `cancelled`), built on the function's first call that could record
//! rather than in its `static`.
//!
//! A `DefaultCallsite` and its `Metadata` point at each other, so in a
//! `static` they cost the compiler a const evaluation of both, three
//! times, for every annotated function: most of what `#[exit_path]` added
//! to `cargo check`. Built at run time instead, once per function and
//! leaked (there are as many as annotated functions), they cost the static
//! nothing but an empty `OnceLock`.

use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::OnceLock;

use tracing_core::callsite::{self, DefaultCallsite, Identifier};
use tracing_core::field::FieldSet;
use tracing_core::metadata::Kind;
use tracing_core::subscriber::Interest;
use tracing_core::{Callsite, Level, Metadata};

use super::site::{SiteInfo, FIELDS};

/// The callsites of one annotated function.
pub(crate) struct Callsites {
    pub ok: ExitCallsite,
    pub err: ExitCallsite,
    pub cancelled: ExitCallsite,
}

/// One callsite: its metadata (set right after the callsites are leaked,
/// before anyone else can see them) and the interest the subscriber has
/// in it.
pub(crate) struct ExitCallsite {
    meta: OnceLock<Metadata<'static>>,
    /// 0 never, 1 sometimes, 2 always; "sometimes" until registered, so
    /// that the subscriber is asked.
    interest: AtomicU8,
}

const NEVER: u8 = 0;
const SOMETIMES: u8 = 1;
const ALWAYS: u8 = 2;

/// What `metadata()` could give for a callsite whose metadata is not set,
/// which never happens: it is set before the callsite is shared.
static UNSET_META: Metadata<'static> = Metadata::new(
    "lastwords::fn_exit",
    "lastwords",
    Level::INFO,
    None,
    None,
    None,
    FieldSet::new(FIELDS, Identifier(&UNSET)),
    Kind::EVENT,
);
static UNSET: DefaultCallsite = DefaultCallsite::new(&UNSET_META);

impl ExitCallsite {
    const fn new() -> ExitCallsite {
        ExitCallsite {
            meta: OnceLock::new(),
            interest: AtomicU8::new(SOMETIMES),
        }
    }

    fn init(&'static self, info: &SiteInfo, level: Level) {
        let _ = self.meta.set(Metadata::new(
            "lastwords::fn_exit",
            info.module,
            level,
            Some(info.file),
            Some(info.line),
            Some(info.module),
            FieldSet::new(FIELDS, Identifier(self)),
            Kind::EVENT,
        ));
    }

    /// The subscriber's interest.
    pub fn interest(&self) -> Interest {
        match self.interest.load(Relaxed) {
            NEVER => Interest::never(),
            ALWAYS => Interest::always(),
            _ => Interest::sometimes(),
        }
    }
}

impl Callsite for ExitCallsite {
    fn set_interest(&self, interest: Interest) {
        let value = if interest.is_never() {
            NEVER
        } else if interest.is_always() {
            ALWAYS
        } else {
            SOMETIMES
        };
        self.interest.store(value, Relaxed);
    }

    fn metadata(&self) -> &Metadata<'_> {
        self.meta.get().unwrap_or(&UNSET_META)
    }
}

impl Callsites {
    /// The callsites of the function `info` describes, from `cell`,
    /// built and registered on first use. `info` is asked for only then:
    /// the fast path is one load.
    #[inline]
    pub fn get<'a>(
        cell: &'static OnceLock<&'static Callsites>,
        info: impl FnOnce() -> &'a SiteInfo,
    ) -> &'static Callsites {
        match cell.get() {
            Some(c) => c,
            None => Self::build(cell, info()),
        }
    }

    #[cold]
    #[inline(never)]
    fn build(cell: &'static OnceLock<&'static Callsites>, info: &SiteInfo) -> &'static Callsites {
        let mut created = false;
        let callsites = *cell.get_or_init(|| {
            created = true;
            let c: &'static Callsites = Box::leak(Box::new(Callsites {
                ok: ExitCallsite::new(),
                err: ExitCallsite::new(),
                cancelled: ExitCallsite::new(),
            }));
            let [ok, err, cancelled] = info.levels;
            c.ok.init(info, ok);
            c.err.init(info, err);
            c.cancelled.init(info, cancelled);
            c
        });
        // Registered outside `get_or_init`: a subscriber that calls this
        // very function while it registers finds the callsites there.
        if created {
            callsite::register(&callsites.ok);
            callsite::register(&callsites.err);
            callsite::register(&callsites.cancelled);
        }
        callsites
    }
}
