//! Query classes: named kinds of work (`realtime`, `standard`, `analytics`,
//! `batch`, and your own), each with a deadline for the whole call, a
//! priority lane, a slow-query threshold and a retry count, chosen per call
//! by name or by rules on the statement (a SQL comment tag such as
//! `/* class=batch */`, a fingerprint, a table it touches). Backends apply
//! them (lido-postgres: `PgPool::class`) and label statistics with them.

use std::sync::Arc;
use std::time::Duration;

use crate::waiters::Priority;

/// One class of queries.
///
/// ```
/// use std::time::Duration;
/// use lido_core::{Priority, QueryClass};
/// let reports = QueryClass::new("reports")
///     .deadline(Some(Duration::from_secs(60)))
///     .priority(Priority::Background)
///     .slow_threshold(Some(Duration::from_secs(10)));
/// assert_eq!(reports.name(), "reports");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct QueryClass {
    name: String,
    /// The whole call's limit (acquire + statement); `None`: the pool's.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub deadline: Option<Duration>,
    /// The lane its calls wait in.
    pub priority: Priority,
    /// Calls at or above this are logged as slow; `None`: the pool's.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub slow_threshold: Option<Duration>,
    /// How many times a transaction failing with a retryable error
    /// (deadlock, serialization failure) runs again (lido-postgres:
    /// `ClassConn::tx_options`).
    pub retries: u32,
    /// Calls finishing above this share of their deadline count as near
    /// timeouts (default 0.8).
    pub near_timeout: f64,
    /// Learned deadlines per statement (`None`: the class deadline only).
    pub learn: Option<Learning>,
    /// How long its cached reads are kept (`None`: the pool's default);
    /// used by backends with a result cache.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub cache_ttl: Option<Duration>,
}

/// How a class learns each statement's deadline from its own latency:
/// once a statement has `min_samples` calls, its deadline becomes
/// `clamp(k × p99, floor, class deadline)`, moved towards that target by
/// `weight` of the distance at each update (every 32 calls), so one slow
/// burst neither tightens nor loosens it much.
///
/// ```
/// use std::time::Duration;
/// use lido_core::{Learning, QueryClass};
/// let class = QueryClass::new("api").learn(Some(Learning::default()));
/// let l = class.learn.unwrap();
/// assert_eq!(l.target(Duration::from_millis(40), class.deadline), Duration::from_millis(120));
/// assert_eq!(l.target(Duration::from_millis(1), class.deadline), l.floor);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct Learning {
    /// The deadline as a multiple of the statement's p99 (default 3).
    pub k: f64,
    /// Never below this (default 50 ms).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub floor: Duration,
    /// Calls a statement needs before its deadline is learned (default 100).
    pub min_samples: u64,
    /// Share of the distance to the new target moved at each update (default 0.1).
    pub weight: f64,
}

impl Default for Learning {
    fn default() -> Self {
        Self {
            k: 3.0,
            floor: Duration::from_millis(50),
            min_samples: 100,
            weight: 0.1,
        }
    }
}

impl Learning {
    /// The deadline a statement with this `p99` should have, under `ceiling`.
    pub fn target(&self, p99: Duration, ceiling: Option<Duration>) -> Duration {
        let t = p99.mul_f64(self.k.max(1.0)).max(self.floor);
        match ceiling {
            Some(c) => t.min(c).max(self.floor.min(c)),
            None => t,
        }
    }

    /// `current` moved towards `target` (the first value is the target itself).
    pub fn step(&self, current: Option<Duration>, target: Duration) -> Duration {
        match current {
            None => target,
            Some(c) => {
                let w = self.weight.clamp(0.0, 1.0);
                let secs = c.as_secs_f64() + w * (target.as_secs_f64() - c.as_secs_f64());
                Duration::from_secs_f64(secs.max(0.0)).max(self.floor)
            }
        }
    }
}

impl Default for QueryClass {
    /// `standard`.
    fn default() -> Self {
        Self::new("standard")
    }
}

impl QueryClass {
    /// A class named `name` with the `standard` settings.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            deadline: Some(Duration::from_secs(5)),
            priority: Priority::Normal,
            slow_threshold: Some(Duration::from_millis(500)),
            retries: 1,
            near_timeout: 0.8,
            learn: None,
            cache_ttl: None,
        }
    }

    /// User-facing requests: 500 ms, `Critical`, slow at 100 ms, no retry.
    pub fn realtime() -> Self {
        Self::new("realtime")
            .deadline(Some(Duration::from_millis(500)))
            .priority(Priority::Critical)
            .slow_threshold(Some(Duration::from_millis(100)))
            .retries(0)
    }

    /// Ordinary work: 5 s, `Normal`, slow at 500 ms, one retry.
    pub fn standard() -> Self {
        Self::new("standard")
    }

    /// Reports: 60 s, `Background`, slow at 10 s, no retry.
    pub fn analytics() -> Self {
        Self::new("analytics")
            .deadline(Some(Duration::from_secs(60)))
            .priority(Priority::Background)
            .slow_threshold(Some(Duration::from_secs(10)))
            .retries(0)
    }

    /// Batch jobs: 10 min, `Background`, slow at 60 s, three retries.
    pub fn batch() -> Self {
        Self::new("batch")
            .deadline(Some(Duration::from_secs(600)))
            .priority(Priority::Background)
            .slow_threshold(Some(Duration::from_secs(60)))
            .retries(3)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the deadline.
    pub fn deadline(mut self, d: Option<Duration>) -> Self {
        self.deadline = d;
        self
    }

    /// Sets the priority lane.
    pub fn priority(mut self, p: Priority) -> Self {
        self.priority = p;
        self
    }

    /// Sets the slow-query threshold.
    pub fn slow_threshold(mut self, d: Option<Duration>) -> Self {
        self.slow_threshold = d;
        self
    }

    /// Sets how long its cached reads are kept.
    pub fn cache_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// Turns learned deadlines on (or off with `None`).
    pub fn learn(mut self, learning: Option<Learning>) -> Self {
        self.learn = learning;
        self
    }

    /// Sets the retry count.
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// Whether a call that took `took` counts as a near timeout.
    pub fn is_near_timeout(&self, took: Duration) -> bool {
        self.deadline
            .is_some_and(|d| took >= d.mul_f64(self.near_timeout) && took < d)
    }
}

/// A rule choosing a class for a statement that was not given one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassRule {
    /// Statements with this fingerprint (of the normalized text).
    Fingerprint(u64, String),
    /// Statements touching this table (unqualified, lower case).
    Table(String, String),
}

/// A statement, as rules see it.
#[derive(Debug, Clone, Copy)]
pub struct StatementInfo<'a> {
    /// The statement as the caller wrote it (comments included).
    pub sql: &'a str,
    /// Fingerprint of the normalized text, when known.
    pub fingerprint: Option<u64>,
    /// Tables it touches (unqualified, lower case).
    pub tables: &'a [String],
}

/// An unknown class name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown query class {name:?}; the pool knows {}: add it with Classes::with", known.join(", "))]
pub struct UnknownClass {
    /// The name asked for.
    pub name: String,
    /// The classes the pool has.
    pub known: Vec<String>,
}

/// The classes a pool knows, and its rules. The default set is `realtime`,
/// `standard`, `analytics` and `batch`. A statement no tag or rule picks
/// has no class (the pool's own settings apply) unless
/// [`default_class`](Self::default_class) names one.
///
/// ```
/// use lido_core::{Classes, QueryClass, StatementInfo};
/// let classes = Classes::default()
///     .with(QueryClass::new("reports"))
///     .table_rule("audit_log", "batch");
/// let tables = ["audit_log".to_string()];
/// let info = StatementInfo { sql: "SELECT * FROM audit_log", fingerprint: None, tables: &tables };
/// assert_eq!(classes.classify(&info).map(|c| c.name()), Some("batch"));
/// let tagged = StatementInfo { sql: "/* class=reports */ SELECT 1", fingerprint: None, tables: &[] };
/// assert_eq!(classes.classify(&tagged).map(|c| c.name()), Some("reports"));
/// assert!(classes.get("nope").is_err());
/// ```
#[derive(Debug, Clone)]
pub struct Classes {
    classes: Vec<Arc<QueryClass>>,
    rules: Vec<ClassRule>,
    default: Option<usize>,
}

impl Default for Classes {
    fn default() -> Self {
        let classes = [
            QueryClass::realtime(),
            QueryClass::standard(),
            QueryClass::analytics(),
            QueryClass::batch(),
        ];
        Self {
            classes: classes.into_iter().map(Arc::new).collect(),
            rules: Vec::new(),
            default: None,
        }
    }
}

impl Classes {
    /// Adds `class`, replacing one of the same name.
    pub fn with(mut self, class: QueryClass) -> Self {
        match self.index(class.name()) {
            Some(i) => self.classes[i] = Arc::new(class),
            None => self.classes.push(Arc::new(class)),
        }
        self
    }

    /// Statements touching `table` get `class` (checked after a tag).
    pub fn table_rule(mut self, table: &str, class: &str) -> Self {
        let rule = ClassRule::Table(table.to_ascii_lowercase(), class.to_owned());
        self.rules.push(rule);
        self
    }

    /// Statements with `fingerprint` get `class` (checked after a tag).
    pub fn fingerprint_rule(mut self, fingerprint: u64, class: &str) -> Self {
        self.rules
            .push(ClassRule::Fingerprint(fingerprint, class.to_owned()));
        self
    }

    /// Makes `name` the class of statements no tag or rule picks.
    pub fn default_class(mut self, name: &str) -> Result<Self, UnknownClass> {
        self.default = Some(self.index(name).ok_or_else(|| self.unknown(name))?);
        Ok(self)
    }

    /// Checks that every rule names a known class.
    pub fn validate(&self) -> Result<(), UnknownClass> {
        for rule in &self.rules {
            let (ClassRule::Table(_, c) | ClassRule::Fingerprint(_, c)) = rule;
            self.get(c)?;
        }
        Ok(())
    }

    /// The class named `name`.
    pub fn get(&self, name: &str) -> Result<Arc<QueryClass>, UnknownClass> {
        match self.index(name) {
            Some(i) => Ok(Arc::clone(&self.classes[i])),
            None => Err(self.unknown(name)),
        }
    }

    /// Every class, in the order added (the four defaults first).
    pub fn all(&self) -> &[Arc<QueryClass>] {
        &self.classes
    }

    /// The class at `index` (see [`index`](Self::index)).
    pub fn at(&self, index: usize) -> Option<&Arc<QueryClass>> {
        self.classes.get(index)
    }

    /// Whether a statement's tables matter to the rules (so the backend
    /// must find them).
    pub fn wants_tables(&self) -> bool {
        self.rules.iter().any(|r| matches!(r, ClassRule::Table(..)))
    }

    /// The class for `info`: a `/* class=NAME */` tag naming a known
    /// class, else the first rule that matches, else the default class.
    pub fn classify(&self, info: &StatementInfo<'_>) -> Option<&Arc<QueryClass>> {
        self.classify_index(info).map(|i| &self.classes[i])
    }

    /// [`classify`](Self::classify), as the class's index.
    pub fn classify_index(&self, info: &StatementInfo<'_>) -> Option<usize> {
        if let Some(i) = crate::class_tag::tag(info.sql).and_then(|t| self.index(t)) {
            return Some(i);
        }
        let hit = self.rules.iter().find_map(|rule| match rule {
            ClassRule::Fingerprint(f, c) if info.fingerprint == Some(*f) => Some(c),
            ClassRule::Table(t, c) if info.tables.iter().any(|x| x == t) => Some(c),
            _ => None,
        });
        hit.and_then(|c| self.index(c)).or(self.default)
    }

    /// The position of class `name`, if known.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.classes.iter().position(|c| c.name() == name)
    }

    fn unknown(&self, name: &str) -> UnknownClass {
        UnknownClass {
            name: name.to_owned(),
            known: self.classes.iter().map(|c| c.name().to_owned()).collect(),
        }
    }
}

/// Classes as a settings file writes them (with feature `serde`): classes
/// added to (or replacing) the four defaults, table and fingerprint
/// (16 hex digits, as the metrics show it) rules, and the default class.
///
/// ```
/// use lido_core::ClassesConfig;
/// let cfg = ClassesConfig {
///     classes: vec![lido_core::QueryClass::new("reports")],
///     tables: [("audit_log".to_string(), "batch".to_string())].into(),
///     ..ClassesConfig::default()
/// };
/// let classes = cfg.build().expect("known classes");
/// assert!(classes.get("reports").is_ok());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct ClassesConfig {
    /// Classes besides (or replacing) `realtime`, `standard`, `analytics`, `batch`.
    pub classes: Vec<QueryClass>,
    /// Table name → class.
    pub tables: std::collections::BTreeMap<String, String>,
    /// Fingerprint (16 hex digits) → class.
    pub fingerprints: std::collections::BTreeMap<String, String>,
    /// The class of statements no tag or rule picks (`None`: the pool's settings).
    pub default: Option<String>,
}

/// A [`ClassesConfig`] that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClassesConfigError {
    /// A rule or the default names no class.
    #[error(transparent)]
    Unknown(#[from] UnknownClass),
    /// A fingerprint rule's key is not 16 hex digits.
    #[error("fingerprint {0:?} is not a hex number (write it as the metrics show it, e.g. \"00ff12ab34cd56ef\")")]
    Fingerprint(String),
}

impl ClassesConfig {
    /// The classes and rules, checked.
    pub fn build(&self) -> Result<Classes, ClassesConfigError> {
        let mut c = Classes::default();
        for class in &self.classes {
            c = c.with(class.clone());
        }
        for (table, class) in &self.tables {
            c = c.table_rule(table, class);
        }
        for (fp, class) in &self.fingerprints {
            let n = u64::from_str_radix(fp.trim_start_matches("0x"), 16)
                .map_err(|_| ClassesConfigError::Fingerprint(fp.clone()))?;
            c = c.fingerprint_rule(n, class);
        }
        if let Some(d) = &self.default {
            c = c.default_class(d)?;
        }
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_tag_falls_back_to_rules_then_the_default() {
        let c = Classes::default().table_rule("Events", "analytics");
        let t = ["events".to_string()];
        let info = StatementInfo {
            sql: "/* class=nope */ SELECT * FROM events",
            fingerprint: None,
            tables: &t,
        };
        assert_eq!(c.classify(&info).map(|c| c.name()), Some("analytics"));
        let plain = StatementInfo {
            sql: "SELECT 1",
            fingerprint: Some(7),
            tables: &[],
        };
        assert_eq!(c.classify(&plain), None, "no class: the pool's settings");
        let d = c.clone().default_class("standard").expect("known");
        assert_eq!(d.classify(&plain).map(|c| c.name()), Some("standard"));
        let c = c.fingerprint_rule(7, "realtime");
        assert_eq!(c.classify(&plain).map(|c| c.name()), Some("realtime"));
    }

    #[test]
    fn unknown_names_say_which_classes_exist() {
        let e = Classes::default().get("fast").expect_err("unknown");
        let text = e.to_string();
        assert!(text.contains("\"fast\"") && text.contains("realtime, standard, analytics, batch"));
        let bad = Classes::default().table_rule("t", "fast");
        assert_eq!(bad.validate().expect_err("unknown").name, "fast");
        assert!(Classes::default().default_class("fast").is_err());
    }

    #[test]
    fn near_timeouts_are_the_top_fifth_of_the_deadline() {
        let c = QueryClass::new("x").deadline(Some(Duration::from_millis(100)));
        assert!(!c.is_near_timeout(Duration::from_millis(79)));
        assert!(c.is_near_timeout(Duration::from_millis(85)));
        assert!(
            !c.is_near_timeout(Duration::from_millis(100)),
            "that is a timeout"
        );
        assert!(!QueryClass::new("y")
            .deadline(None)
            .is_near_timeout(Duration::from_secs(9)));
    }

    #[test]
    fn learned_deadlines_clamp_and_move_slowly() {
        let l = Learning::default();
        let ceiling = Some(Duration::from_secs(1));
        assert_eq!(
            l.target(Duration::from_millis(500), ceiling),
            Duration::from_secs(1)
        );
        assert_eq!(
            l.target(Duration::from_millis(10), ceiling),
            Duration::from_millis(50)
        );
        let start = l.step(None, Duration::from_millis(300));
        assert_eq!(start, Duration::from_millis(300));
        let burst = l.step(Some(start), Duration::from_secs(1));
        assert!(
            burst < Duration::from_millis(400),
            "one burst moves it a tenth: {burst:?}"
        );
        let mut d = start;
        for _ in 0..200 {
            d = l.step(Some(d), Duration::from_millis(100));
        }
        assert!(
            d < Duration::from_millis(101) && d >= Duration::from_millis(99),
            "{d:?}"
        );
    }

    #[test]
    fn with_replaces_a_class_of_the_same_name() {
        let c = Classes::default().with(QueryClass::new("batch").retries(9));
        assert_eq!(c.all().len(), 4);
        assert_eq!(c.get("batch").map(|b| b.retries), Ok(9));
    }
}
