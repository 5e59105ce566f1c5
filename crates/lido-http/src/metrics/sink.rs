//! [`MetricSink`]: the extension point for metric families collected at
//! scrape time, merged across pools so each family is written once.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

/// A histogram read at scrape time: cumulative counts at upper bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSample {
    /// Sum of all samples (seconds for durations).
    pub sum: f64,
    /// Samples recorded.
    pub count: u64,
    /// `(upper bound, samples at or below it)`, bounds ascending, `+Inf` not included.
    pub cumulative: Vec<(f64, u64)>,
}

impl HistogramSample {
    /// Reads a lido-core duration histogram at `bounds` (in seconds).
    ///
    /// The core's buckets are log-linear (≤ 12.5 % wide); a sample is counted
    /// at a bound only when its whole core bucket lies below it, so counts
    /// near a bound may land in the next one.
    pub fn from_core(h: &lido_core::Histogram, bounds: &[Duration]) -> Self {
        let counts = h.cumulative(bounds);
        let count = h.count().max(counts.last().copied().unwrap_or(0));
        let cumulative = bounds
            .iter()
            .map(Duration::as_secs_f64)
            .zip(counts)
            .collect();
        Self {
            sum: h.sum().as_secs_f64(),
            count,
            cumulative,
        }
    }

    /// Per-bucket counts ending with `+Inf`, as the encoder wants them.
    fn buckets(&self) -> Vec<(f64, u64)> {
        let mut out = Vec::with_capacity(self.cumulative.len() + 1);
        let mut prev = 0u64;
        for &(bound, cum) in &self.cumulative {
            let cum = cum.max(prev);
            out.push((bound, cum - prev));
            prev = cum;
        }
        out.push((f64::INFINITY, self.count.saturating_sub(prev)));
        out
    }
}

#[derive(Debug, Clone)]
enum Value {
    Counter(u64),
    CounterF64(f64),
    Gauge(f64),
    Histogram(HistogramSample),
}

impl Value {
    fn kind(&self) -> MetricType {
        match self {
            Self::Counter(_) | Self::CounterF64(_) => MetricType::Counter,
            Self::Gauge(_) => MetricType::Gauge,
            Self::Histogram(_) => MetricType::Histogram,
        }
    }
}

type Labels = Vec<(String, String)>;

#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    kind: MetricType,
    samples: Vec<(Labels, Value)>,
}

/// Metric families gathered during one scrape.
#[derive(Debug, Default)]
pub(crate) struct Families {
    list: Vec<Family>,
    index: HashMap<String, usize>,
}

impl Families {
    fn push(&mut self, name: &str, help: &str, labels: Labels, value: Value) {
        let kind = value.kind();
        let i = *self.index.entry(name.to_owned()).or_insert_with(|| {
            self.list.push(Family {
                name: name.to_owned(),
                help: help.to_owned(),
                kind,
                samples: Vec::new(),
            });
            self.list.len() - 1
        });
        let family = &mut self.list[i];
        if family.kind.as_str() != kind.as_str() {
            tracing::warn!(
                name,
                "lido: metric family written with two types; sample dropped"
            );
            return;
        }
        family.samples.push((labels, value));
    }

    /// Writes every family through a prometheus-client encoder.
    pub fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> fmt::Result {
        for f in &self.list {
            let (base, unit) = split_unit(&f.name);
            let mut metric = encoder.encode_descriptor(base, &f.help, unit.as_ref(), f.kind)?;
            for (labels, value) in &f.samples {
                if labels.is_empty() {
                    write_value(&mut metric, value)?;
                } else {
                    write_value(&mut metric.encode_family(labels)?, value)?;
                }
            }
        }
        Ok(())
    }
}

fn write_value(m: &mut MetricEncoder<'_>, value: &Value) -> fmt::Result {
    match value {
        Value::Counter(v) => m.encode_counter::<NoLabelSet, _, u64>(v, None),
        Value::CounterF64(v) => m.encode_counter::<NoLabelSet, _, f64>(v, None),
        Value::Gauge(v) if is_integral(*v) => m.encode_gauge(&(*v as i64)),
        Value::Gauge(v) => m.encode_gauge(v),
        Value::Histogram(h) => m.encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets(), None),
    }
}

/// Whole numbers print without `.0`.
fn is_integral(v: f64) -> bool {
    v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0
}

/// `lido_pool_acquire_wait_seconds` → (`lido_pool_acquire_wait`, seconds): the
/// encoder appends the unit again and writes a `# UNIT` line.
fn split_unit(name: &str) -> (&str, Option<Unit>) {
    for (suffix, unit) in [("_seconds", Unit::Seconds), ("_bytes", Unit::Bytes)] {
        if let Some(base) = name.strip_suffix(suffix) {
            return (base, Some(unit));
        }
    }
    (name, None)
}

/// Where scrape-time collectors write samples. Every sample gets the sink's
/// base labels (`pool="…"` for per-pool extensions) before its own.
///
/// Name families without `_total` (counters get it appended); a name ending
/// in `_seconds` or `_bytes` gets an OpenMetrics `# UNIT`.
///
/// ```
/// use lido_http::{MetricSink, MetricsExtension};
///
/// struct StatementCache;
///
/// impl MetricsExtension for StatementCache {
///     fn collect(&self, sink: &mut MetricSink<'_>) {
///         sink.counter("lido_pg_statement_cache_hits", "Prepared statements reused.", &[], 42);
///         sink.counter("lido_pg_statement_cache_misses", "Statements prepared anew.", &[], 3);
///     }
/// }
/// ```
pub struct MetricSink<'a> {
    families: &'a mut Families,
    base: &'a [(&'a str, &'a str)],
    bounds: &'a [Duration],
}

impl<'a> MetricSink<'a> {
    pub(crate) fn new(
        families: &'a mut Families,
        base: &'a [(&'a str, &'a str)],
        bounds: &'a [Duration],
    ) -> Self {
        Self {
            families,
            base,
            bounds,
        }
    }

    fn labels(&self, extra: &[(&str, &str)]) -> Labels {
        self.base
            .iter()
            .chain(extra)
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// A counter sample.
    pub fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: u64) {
        let labels = self.labels(labels);
        self.families
            .push(name, help, labels, Value::Counter(value));
    }

    /// A counter sample with a fractional value (e.g. seconds spent).
    pub fn counter_f64(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        let labels = self.labels(labels);
        self.families
            .push(name, help, labels, Value::CounterF64(value));
    }

    /// A gauge sample.
    pub fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        let labels = self.labels(labels);
        self.families.push(name, help, labels, Value::Gauge(value));
    }

    /// A histogram sample.
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        h: HistogramSample,
    ) {
        let labels = self.labels(labels);
        self.families.push(name, help, labels, Value::Histogram(h));
    }

    /// A lido-core duration histogram read at the exporter's bucket bounds.
    pub fn duration_histogram(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        h: &lido_core::Histogram,
    ) {
        let sample = HistogramSample::from_core(h, self.bounds);
        self.histogram(name, help, labels, sample);
    }

    /// The bucket bounds duration histograms are exported with.
    pub fn bounds(&self) -> &[Duration] {
        self.bounds
    }
}

impl fmt::Debug for MetricSink<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricSink")
            .field("base", &self.base)
            .finish()
    }
}

/// Extra metric families collected at scrape time: the extension point for
/// backends (query durations, errors by SQLSTATE class, statement-cache hits
/// and misses, transaction commits/rollbacks/retries). Register per pool with
/// [`NamedPool::with_metrics`](crate::NamedPool::with_metrics) (samples get
/// `pool="…"`) or globally with [`MetricsBuilder::extension`](crate::MetricsBuilder::extension).
/// lido-postgres implements it as `lido_postgres::PgMetrics` (its `http` feature).
pub trait MetricsExtension: Send + Sync + 'static {
    /// Writes this scrape's samples.
    fn collect(&self, sink: &mut MetricSink<'_>);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_per_bucket_and_end_with_inf() {
        let h = HistogramSample {
            sum: 1.0,
            count: 10,
            cumulative: vec![(0.1, 2), (1.0, 7), (5.0, 6)],
        };
        assert_eq!(
            h.buckets(),
            vec![(0.1, 2), (1.0, 5), (5.0, 0), (f64::INFINITY, 3)]
        );
    }
}
