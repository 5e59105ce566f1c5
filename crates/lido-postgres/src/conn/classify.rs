//! Query classes on a call: the class given ([`Timed::in_class`]) or the
//! one a statement's tag or the pool's rules pick, its slow-query
//! threshold, and its deadline (or the statement's learned one).

use std::time::Duration;

use crate::conn::exec::{Limit, Timed};
use crate::obs::call::Call;
use crate::obs::statements::Entry;

impl Timed<'_> {
    /// These statements in query class `index` of the pool, with `limit`
    /// (what is left of the class's deadline) and its slow-query threshold.
    pub(crate) fn in_class(mut self, index: usize, limit: Option<Duration>) -> Self {
        self.limit = Limit::query(limit);
        self.defaulted = false;
        self.apply_class(index);
        self
    }

    /// Labels the call with class `index` and takes its slow-query threshold
    /// (and, where the limit is the pool's default, its deadline).
    fn apply_class(&mut self, index: usize) {
        let book = &self.conn.ctx.obs.classes;
        let Some(class) = book.classes.at(index) else {
            return;
        };
        self.opts.class = Some(index);
        if let (None, Some(t)) = (self.opts.slow, class.slow_threshold) {
            self.opts.slow = Some(Some(t));
        }
        if self.defaulted && class.deadline.is_some() {
            self.limit = Limit::query(class.deadline);
        }
    }

    /// This call with the class its statement's tag or the pool's rules
    /// pick, when it was not given one.
    pub(crate) fn classified(&self, call: &Call<'_>, known: Option<&Entry>) -> Self {
        let mut me = *self;
        let book = &self.conn.ctx.obs.classes;
        if me.opts.class.is_none() {
            let Some(sql) = call.sql else { return me };
            if let Some(i) = book.classify(sql, known.map(|e| e.shape.fingerprint)) {
                me.apply_class(i);
            }
        }
        // A class that learns: the statement's learned deadline, if shorter.
        let class = me.opts.class.and_then(|i| book.classes.at(i));
        if let (Some(c), Some(learned)) = (class, known.and_then(Entry::learned)) {
            if c.learn.is_some() {
                let limit = me.limit.query.map_or(learned, |q| q.min(learned));
                me.limit.query = Some(limit);
            }
        }
        me
    }
}
