//! `tracing` spans for acquiring, connecting and querying, carrying the
//! OpenTelemetry database semantic conventions.
//!
//! Span names are static in `tracing`: `lido.acquire`, `lido.connect` and
//! `lido.query`; a query span also sets `otel.name` (`SELECT orders`),
//! which tracing-opentelemetry uses as the exported span name. All spans
//! are at INFO with target `lido::postgres`. Attributes are worked out only
//! when a subscriber enables the span, and for a statement the
//! per-statement table knows, taken from its [`Shape`] (not normalized again).

use tracing::field::Empty;
use tracing::Span;

use crate::error::PgError;
use crate::obs::call::{Call, DbInfo, Obs, RowCount};
use crate::obs::errors::ErrorKind;
use crate::obs::shape::Shape;

/// Integers go to spans as `i64`: tracing-opentelemetry exports `u64`
/// fields as strings, and the conventions want `server.port` and
/// `db.response.returned_rows` as integers.
fn int(v: impl TryInto<i64>) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

/// `db.system` and `db.system.name`.
pub const DB_SYSTEM: &str = "postgresql";

/// The target of lido-postgres's spans.
pub const SPAN_TARGET: &str = "lido::postgres";

/// Whether any subscriber wants INFO at all. When none does, lido's spans
/// are not built: with tracing's `log` feature on, a disabled span still
/// records all its fields (for `log`), which is work on every call.
fn wanted() -> bool {
    tracing::level_enabled!(tracing::Level::INFO)
}

/// The span of one statement call on `server` (host name and port),
/// entered while it runs; `known` is the statement's shape when the
/// per-statement table has it.
pub(crate) fn query(
    obs: &Obs,
    server: (&str, u16),
    call: &Call<'_>,
    (known, class): (Option<&Shape>, Option<usize>),
) -> Span {
    if !wanted() {
        return Span::none();
    }
    let (address, port) = server;
    let span = tracing::info_span!(target: "lido::postgres", "lido.query",
        otel.name = Empty, otel.kind = "client", otel.status_code = Empty,
        db.system = DB_SYSTEM, db.system.name = DB_SYSTEM,
        db.namespace = &*obs.db.namespace,
        db.operation.name = Empty, db.collection.name = Empty,
        db.query.summary = Empty, db.query.text = Empty,
        server.address = address, server.port = int(port),
        db.response.returned_rows = Empty, db.response.status_code = Empty,
        error.type = Empty, lido.operation = call.op.as_str(), lido.query_class = Empty);
    if span.is_disabled() {
        return span;
    }
    if let Some(class) = class.and_then(|i| obs.classes.classes.at(i)) {
        span.record("lido.query_class", class.name());
    }
    let Some(shape) = Shape::known_or_of(known, call.sql) else {
        // A prepared statement: no text to name it by.
        span.record("otel.name", DB_SYSTEM);
        return span;
    };
    let summary = &shape.summary;
    span.record("otel.name", summary.name.as_str());
    if let Some(op) = &summary.operation {
        span.record("db.operation.name", op.as_str());
        span.record("db.query.summary", summary.name.as_str());
    }
    if let Some(c) = &summary.collection {
        span.record("db.collection.name", c.as_str());
    }
    if obs.query_text {
        span.record("db.query.text", &*shape.text);
    }
    span
}

/// Records a call's outcome on its span.
pub(crate) fn finish<T: RowCount>(span: &Span, result: &Result<T, PgError>) {
    if span.is_disabled() {
        return;
    }
    match result {
        Ok(v) => {
            span.record("db.response.returned_rows", int(v.rows()));
        }
        Err(e) => failed(span, &ErrorKind::of(e)),
    }
}

/// Marks a span failed: `error.type`, `db.response.status_code`, `otel.status_code`.
pub(crate) fn failed(span: &Span, kind: &ErrorKind<'_>) {
    span.record("error.type", kind.error_type());
    span.record("otel.status_code", "ERROR");
    if let ErrorKind::Sql(code) = kind {
        span.record("db.response.status_code", *code);
    }
}

/// A span of the pool's own work (span names must be literals), with the
/// database and its first host.
macro_rules! pool_span {
    ($name:literal, $kind:literal, $db:expr) => {{
        let db: &DbInfo = $db;
        if !wanted() {
            Span::none()
        } else {
            tracing::info_span!(target: "lido::postgres", $name,
                otel.kind = $kind, otel.status_code = Empty,
                db.system = DB_SYSTEM, db.system.name = DB_SYSTEM,
                db.namespace = &*db.namespace,
                server.address = &*db.address, server.port = int(db.port),
                db.response.status_code = Empty, error.type = Empty)
        }
    }};
}

/// The span of `PgPool::get`.
pub(crate) fn acquire(db: &DbInfo) -> Span {
    pool_span!("lido.acquire", "internal", db)
}

/// Records why `PgPool::get` failed: the server's SQLSTATE when it gave
/// one, else what the pool ran into.
pub(crate) fn acquire_failed(span: &Span, e: &lido_core::Error<PgError>) {
    if span.is_disabled() {
        return;
    }
    match e.backend().map(ErrorKind::of) {
        Some(kind @ ErrorKind::Sql(_)) => failed(span, &kind),
        Some(kind) if matches!(e, lido_core::Error::Connect { .. }) => failed(span, &kind),
        _ => named(span, pool_error_name(e)),
    }
}

fn pool_error_name(e: &lido_core::Error<PgError>) -> &'static str {
    use lido_core::{ConnectFailure, Error};
    match e {
        Error::AcquireTimeout { .. } => "acquire_timeout",
        Error::CircuitOpen { .. } => "circuit_open",
        Error::Closed => "pool_closed",
        Error::Unavailable { .. } => "unavailable",
        Error::Connect {
            cause: ConnectFailure::Timeout(_),
            ..
        } => "connect_timeout",
        _ => "connect",
    }
}

fn named(span: &Span, error_type: &str) {
    span.record("error.type", error_type);
    span.record("otel.status_code", "ERROR");
}

/// The span of one connect (TCP, TLS, authentication, hooks).
pub(crate) fn connect(db: &DbInfo) -> Span {
    pool_span!("lido.connect", "client", db)
}

/// Marks a connect span `error.type = cancelled` if its future is dropped
/// before it finished (the pool's `connect_timeout`, or the pool closing).
pub(crate) struct Unfinished<'s> {
    span: &'s Span,
    done: bool,
}

impl<'s> Unfinished<'s> {
    pub(crate) fn new(span: &'s Span) -> Self {
        Self { span, done: false }
    }

    /// Records where the connect landed (host name and port), or why it failed.
    pub(crate) fn finish(mut self, result: Result<(&str, u16), &PgError>) {
        self.done = true;
        let span = self.span;
        if span.is_disabled() {
            return;
        }
        match result {
            Ok((address, port)) => {
                span.record("server.address", address);
                span.record("server.port", int(port));
            }
            Err(e) => failed(span, &ErrorKind::of(e)),
        }
    }
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if !self.done && !self.span.is_disabled() {
            named(self.span, "cancelled");
        }
    }
}
