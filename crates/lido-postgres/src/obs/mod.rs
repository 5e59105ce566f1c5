//! Observability, above [`crate::net`] and below [`crate::conn`]:
//! counters and durations ([`stats`]), naming errors ([`errors`]),
//! per-statement statistics ([`statements`], with [`normalize`], [`shape`]
//! and [`summary`]), the slow-query log ([`slowlog`]), `tracing` spans with
//! OpenTelemetry's database attributes ([`spans`]), and recording a finished
//! call ([`record`]). Everything here takes plain data ([`call`]), never a
//! connection.

pub(crate) mod call;
pub(crate) mod classes;
pub(crate) mod errors;
pub(crate) mod feed_position;
pub(crate) mod normalize;
pub(crate) mod open_tx;
pub(crate) mod record;
pub(crate) mod result_cache;
pub(crate) mod settings;
pub(crate) mod shape;
pub(crate) mod slowlog;
pub(crate) mod spans;
pub(crate) mod statement_stat;
pub(crate) mod statements;
pub(crate) mod statements_json;
pub(crate) mod stats;
pub(crate) mod summary;
pub(crate) mod table_stats;
pub(crate) mod tables;
pub(crate) mod writes;
