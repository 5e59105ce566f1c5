//! [`Shape`]: what statistics, spans and the slow-query log show of one
//! SQL text, worked out once per statement (the per-statement table keeps
//! it with the statement's counters) rather than on every call.

use std::borrow::Cow;
use std::sync::Arc;

use crate::obs::normalize::{fingerprint, normalize_sql};
use crate::obs::summary::{summarize, Summary};

/// One statement's normalized text, fingerprint and summary.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    /// [`normalize_sql`] of the text as written.
    pub(crate) text: Arc<str>,
    /// [`fingerprint`] of `text`.
    pub(crate) fingerprint: u64,
    /// Operation, table and span name, read from `text`.
    pub(crate) summary: Summary,
}

impl Shape {
    /// The shape of `sql` as written.
    pub(crate) fn of(sql: &str) -> Self {
        Self::of_normalized(normalize_sql(sql).into())
    }

    /// The shape of a text [`normalize_sql`] returned.
    pub(crate) fn of_normalized(text: Arc<str>) -> Self {
        Self {
            fingerprint: fingerprint(&text),
            summary: summarize(&text),
            text,
        }
    }

    /// `known` (the per-statement table's), else worked out from `sql`;
    /// `None` for a prepared statement, whose text the client does not keep.
    pub(crate) fn known_or_of<'a>(
        known: Option<&'a Shape>,
        sql: Option<&str>,
    ) -> Option<Cow<'a, Shape>> {
        match known {
            Some(shape) => Some(Cow::Borrowed(shape)),
            None => sql.map(|s| Cow::Owned(Shape::of(s))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shape_is_the_normalized_text_its_fingerprint_and_summary() {
        let s = Shape::of("select id  from orders where id = 42 -- hi");
        assert_eq!(&*s.text, "select id from orders where id = $1");
        assert_eq!(s.fingerprint, fingerprint(&s.text));
        assert_eq!(s.summary, summarize(&s.text));
        assert_eq!(s.summary.name, "SELECT orders");
        let known = Shape::of("SELECT 1");
        let picked = Shape::known_or_of(Some(&known), Some("UPDATE t SET a = 1"));
        assert!(matches!(picked, Some(Cow::Borrowed(k)) if std::ptr::eq(k, &known)));
        let worked = Shape::known_or_of(None, Some("UPDATE t SET a = 1")).unwrap();
        assert_eq!(worked.summary.name, "UPDATE t");
        assert!(Shape::known_or_of(None, None).is_none());
    }
}
