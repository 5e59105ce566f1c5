//! A `tracing` layer that records every span (name, target, fields as
//! strings, later `record`s included) and every event, for assertions.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use parking_lot::Mutex;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::DefaultGuard;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// A span as recorded: its static name, target and fields.
#[derive(Debug, Clone)]
pub struct SpanRec {
    pub name: &'static str,
    pub target: String,
    pub fields: BTreeMap<String, String>,
}

impl SpanRec {
    /// The field's value, panicking with the span when absent.
    pub fn field(&self, key: &str) -> &str {
        self.fields
            .get(key)
            .unwrap_or_else(|| panic!("span {} has no field {key}: {self:#?}", self.name))
    }
}

/// An event as recorded.
#[derive(Debug, Clone)]
pub struct EventRec {
    pub target: String,
    pub level: Level,
    pub fields: BTreeMap<String, String>,
}

/// The layer; clones share what was recorded.
#[derive(Clone, Default)]
pub struct Capture {
    spans: Arc<Mutex<Vec<SpanRec>>>,
    events: Arc<Mutex<Vec<EventRec>>>,
}

struct Index(usize);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S> Layer<S> for Capture
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let meta = attrs.metadata();
        let mut spans = self.spans.lock();
        spans.push(SpanRec {
            name: meta.name(),
            target: meta.target().to_owned(),
            fields,
        });
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Index(spans.len() - 1));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let index = span.extensions().get::<Index>().map(|Index(i)| *i);
        if let Some(i) = index {
            values.record(&mut Fields(&mut self.spans.lock()[i].fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.events.lock().push(EventRec {
            target: event.metadata().target().to_owned(),
            level: *event.metadata().level(),
            fields,
        });
    }
}

/// Makes the process's global subscriber a bare registry, once: interested
/// in every span at every level. Without it, tests installing thread-local
/// subscribers race each other: a test dropping its subscriber recomputes
/// tracing's global max level and callsite interest from the subscribers
/// it sees, and can leave a concurrently installed one filtered out
/// (`lido.query` spans then never reach it). With an always-interested
/// global subscriber those caches can never say "off".
pub fn ensure_global_interest() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
    });
}

impl Capture {
    /// Makes this the current thread's subscriber until the guard drops
    /// (use a current-thread runtime so every task runs here).
    pub fn install(&self) -> DefaultGuard {
        ensure_global_interest();
        tracing::subscriber::set_default(tracing_subscriber::registry().with(self.clone()))
    }

    pub fn spans(&self) -> Vec<SpanRec> {
        self.spans.lock().clone()
    }

    pub fn spans_named(&self, name: &str) -> Vec<SpanRec> {
        self.spans()
            .into_iter()
            .filter(|s| s.name == name)
            .collect()
    }

    pub fn events(&self) -> Vec<EventRec> {
        self.events.lock().clone()
    }

    pub fn events_for(&self, target: &str) -> Vec<EventRec> {
        self.events()
            .into_iter()
            .filter(|e| e.target == target)
            .collect()
    }
}
