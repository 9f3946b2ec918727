//! Which records go to the file and which to the ring.
//!
//! `.filter()` decides the file, `.recorder_filter()` the ring; the layer
//! must see every event that either wants. [`Either`] is the per-layer
//! filter `install()` puts in front of the layer: it enables what either
//! `EnvFilter` enables and keeps both informed of spans (an `EnvFilter`
//! with span directives tracks the spans it is in). The layer then asks
//! each filter again for the event in hand ([`Route::decide`]).

use std::sync::Arc;

use tracing_core::span::{Attributes, Id, Record};
use tracing_core::subscriber::Interest;
use tracing_core::{LevelFilter, Metadata, Subscriber};
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::{Context, Filter};

use super::Recorder;

/// Where the layer sends an event: the filters to ask. The recorder is the
/// one that runs ([`Recorder::global`]): `install()` starts it only once
/// nothing can fail any more, after the layer is in place.
#[derive(Clone, Debug)]
pub(crate) struct Route {
    /// What the ring keeps.
    pub(crate) ring: Arc<EnvFilter>,
    /// What the file gets; `None`: every event that reaches the layer
    /// (a stack of the user's own, whose filter already decided).
    pub(crate) file: Option<Arc<EnvFilter>>,
}

impl Route {
    /// Whether the event at `meta` goes to the file, and the recorder it
    /// goes to, if any.
    #[inline]
    pub(crate) fn decide<S: Subscriber>(
        &self,
        meta: &Metadata<'_>,
        ctx: &Context<'_, S>,
    ) -> (bool, Option<&'static Recorder>) {
        let file = match &self.file {
            Some(file) => file.enabled(meta, ctx.clone()),
            None => true,
        };
        let ring = Recorder::global().filter(|_| self.ring.enabled(meta, ctx.clone()));
        (file, ring)
    }
}

/// Enables what either filter enables (only `file` when the recorder is
/// off).
pub(crate) struct Either {
    pub(crate) file: Arc<EnvFilter>,
    pub(crate) ring: Option<Arc<EnvFilter>>,
}

impl<S: Subscriber> Filter<S> for Either {
    fn enabled(&self, meta: &Metadata<'_>, ctx: &Context<'_, S>) -> bool {
        self.file.enabled(meta, ctx.clone())
            || self
                .ring
                .as_ref()
                .is_some_and(|r| r.enabled(meta, ctx.clone()))
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        let a = <EnvFilter as Filter<S>>::callsite_enabled(&self.file, meta);
        let Some(ring) = &self.ring else { return a };
        let b = <EnvFilter as Filter<S>>::callsite_enabled(ring, meta);
        if a.is_always() || b.is_always() {
            Interest::always()
        } else if a.is_never() && b.is_never() {
            Interest::never()
        } else {
            Interest::sometimes()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        let a = <EnvFilter as Filter<S>>::max_level_hint(&self.file)?;
        let Some(ring) = &self.ring else {
            return Some(a);
        };
        let b = <EnvFilter as Filter<S>>::max_level_hint(ring)?;
        Some(a.max(b))
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        <EnvFilter as Filter<S>>::on_new_span(&self.file, attrs, id, ctx.clone());
        if let Some(ring) = &self.ring {
            <EnvFilter as Filter<S>>::on_new_span(ring, attrs, id, ctx);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        <EnvFilter as Filter<S>>::on_record(&self.file, id, values, ctx.clone());
        if let Some(ring) = &self.ring {
            <EnvFilter as Filter<S>>::on_record(ring, id, values, ctx);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        <EnvFilter as Filter<S>>::on_enter(&self.file, id, ctx.clone());
        if let Some(ring) = &self.ring {
            <EnvFilter as Filter<S>>::on_enter(ring, id, ctx);
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        <EnvFilter as Filter<S>>::on_exit(&self.file, id, ctx.clone());
        if let Some(ring) = &self.ring {
            <EnvFilter as Filter<S>>::on_exit(ring, id, ctx);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        <EnvFilter as Filter<S>>::on_close(&self.file, id.clone(), ctx.clone());
        if let Some(ring) = &self.ring {
            <EnvFilter as Filter<S>>::on_close(ring, id, ctx);
        }
    }
}
