//! OpenTelemetry correlation (the `opentelemetry` feature): records written
//! inside a span that tracing-opentelemetry traces carry the span's
//! `trace_id` and `span_id` as lowercase hex, the OpenTelemetry log data
//! model's names, so that a log line links to its trace (Loki to Tempo,
//! Elastic).
//!
//! tracing-opentelemetry keeps each span's OpenTelemetry context in the
//! span's extensions, behind a type of its own; it hands the context out
//! through [`tracing_opentelemetry::get_otel_context`], given the span's id
//! and the subscriber it lives in. The lastwords layer learns its
//! subscriber when the subscriber is built (`on_register_dispatch`) and
//! keeps it weakly, so that it never keeps its own subscriber alive.
//!
//! The ids go after the record's fields, before its `span` members: in
//! ordinary events, `fn_exit` and breadcrumbs as they are written, and in
//! the members the panic hook and `log` records copy (rendered when the
//! thread enters a span, see [`hooks::panic_spans`](crate::hooks::panic_spans)).
//! With the feature, `trace_id` and `span_id` are schema keys: a field of
//! that name is written as `field.trace_id`, so that no line has the key
//! twice.

use std::cell::Cell;
use std::sync::OnceLock;

use opentelemetry::trace::TraceContextExt;
use tracing_core::dispatcher::{Dispatch, WeakDispatch};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

/// The subscriber a lastwords layer is part of, once it is built.
#[derive(Clone, Debug, Default)]
pub(crate) struct Otel {
    dispatch: OnceLock<WeakDispatch>,
}

thread_local! {
    /// Set while this thread asks tracing-opentelemetry for a context:
    /// starting an OpenTelemetry span may log (the SDK's own diagnostics),
    /// and a record written then must not ask again for a span whose lock
    /// tracing-opentelemetry holds.
    static ASKING: Cell<bool> = const { Cell::new(false) };
}

impl Otel {
    /// Remembers the subscriber the layer was registered with.
    pub(crate) fn register(&self, dispatch: &Dispatch) {
        // Ignored: a layer is registered with one subscriber; a second
        // registration (a clone of the layer in another stack) keeps the
        // first.
        let _ = self.dispatch.set(dispatch.downgrade());
    }

    /// Appends `,"trace_id":"…","span_id":"…"` for the innermost span of
    /// `current` and its parents that OpenTelemetry traces; nothing when
    /// none does, or when the subscriber has no tracing-opentelemetry layer.
    /// `target` is the record's: the OpenTelemetry SDK's own diagnostics are
    /// left without ids (see [`ASKING`]).
    pub(crate) fn write_ids<'a, R: LookupSpan<'a>>(
        &self,
        out: &mut Vec<u8>,
        current: &SpanRef<'a, R>,
        target: &str,
    ) {
        if is_opentelemetry_crate(target) {
            return;
        }
        let Some(dispatch) = self.dispatch.get().and_then(WeakDispatch::upgrade) else {
            return;
        };
        if ASKING.with(|asking| asking.replace(true)) {
            return;
        }
        let ids = current.scope().find_map(|span| {
            let cx = tracing_opentelemetry::get_otel_context(&span.id(), &dispatch)?;
            let span = cx.span();
            let sc = span.span_context();
            sc.is_valid()
                .then(|| (sc.trace_id().to_bytes(), sc.span_id().to_bytes()))
        });
        ASKING.with(|asking| asking.set(false));
        if let Some((trace_id, span_id)) = ids {
            out.extend_from_slice(b",\"trace_id\":\"");
            hex(out, &trace_id);
            out.extend_from_slice(b"\",\"span_id\":\"");
            hex(out, &span_id);
            out.push(b'"');
        }
    }
}

/// Whether `target` is one the OpenTelemetry crates log their own
/// diagnostics under (their package names: `opentelemetry`,
/// `opentelemetry_sdk`, `opentelemetry-otlp`, ...).
fn is_opentelemetry_crate(target: &str) -> bool {
    target.strip_prefix("opentelemetry").is_some_and(|rest| {
        rest.is_empty() || rest.starts_with(['_', '-']) || rest.starts_with("::")
    })
}

/// Appends `bytes` as lowercase hex.
fn hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 15)]);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_lowercase_and_zero_padded() {
        let mut out = Vec::new();
        super::hex(&mut out, &[0x00, 0x0a, 0xff, 0x42]);
        assert_eq!(out, b"000aff42");
    }
}
