//! Recording a finished call: durations and errors in [`PgStats`], the
//! statement's entry in the per-statement table, and the slow-query log
//! (and table).

use std::sync::Arc;
use std::time::Duration;

use crate::error::PgError;
use crate::obs::call::{Call, CallOpts, LeaseSite, Obs, RowCount};
use crate::obs::shape::Shape;
use crate::obs::slowlog;
use crate::obs::statements::Entry;
use crate::obs::stats::{bump, PgStats};

/// How a call ended: how long it took, its per-call settings, its result.
pub(crate) struct Done<'r, T> {
    pub(crate) took: Duration,
    pub(crate) opts: CallOpts,
    pub(crate) result: &'r Result<T, PgError>,
    /// The connection's lease site (read only for a slow call).
    pub(crate) site: &'r LeaseSite,
}

/// Records a finished call: durations and errors, the statement's entry
/// (`known`: its lookup before the call), and the slow-query log.
pub(crate) fn finish<T: RowCount>(
    obs: &Obs,
    stats: &PgStats,
    call: &Call<'_>,
    known: Option<&Entry>,
    done: &Done<'_, T>,
) {
    let Done {
        took, opts, result, ..
    } = *done;
    let rows = result.as_ref().map_or(0, RowCount::rows);
    let err = result.as_ref().err();
    if obs.statistics {
        stats.record_query(call.op, took, err);
        if let Some(sql) = call.sql {
            obs.statements
                .record(sql, known, took, err.is_some(), (rows, opts.class));
        }
    }
    let timed_out = err.is_some_and(PgError::is_timeout);
    if !timed_out && opts.class.is_none() {
        slow(obs, stats, call, known, done);
        return;
    }
    // The entry exists now if statistics are on (a first call's too).
    let looked = match known {
        Some(_) => None,
        None => call.sql.and_then(|sql| obs.statements.lookup(sql)),
    };
    let entry = known.or(looked.as_deref());
    if let (true, Some(e)) = (timed_out, entry) {
        e.note_deadline(true);
    }
    if let Some(i) = opts.class {
        obs.classes.record(i, took, err);
        let class = obs.classes.classes.at(i);
        if let (Some(c), Some(e)) = (class, entry) {
            if err.is_none() && c.is_near_timeout(took) {
                e.note_deadline(false);
            }
            if let Some(learning) = &c.learn {
                e.learn(learning, c.deadline);
            }
        }
    }
    slow(obs, stats, call, known, done);
}

/// The slow-query log (and table), for a call at or above its threshold.
fn slow<T: RowCount>(
    obs: &Obs,
    stats: &PgStats,
    call: &Call<'_>,
    known: Option<&Entry>,
    done: &Done<'_, T>,
) {
    let Done {
        took,
        opts,
        result,
        site,
    } = *done;
    let Some(limit) = obs.slow_limit(opts) else {
        return;
    };
    if took < limit {
        return;
    }
    bump(&stats.slow_queries);
    let slow = slowlog::Slow {
        took,
        limit,
        rows: result.as_ref().map_or(0, RowCount::rows),
        err: result.as_ref().err(),
        with_params: opts.log_parameters.unwrap_or(obs.log_parameters),
    };
    let shape = Shape::known_or_of(known.map(|e| &e.shape), call.sql);
    slowlog::log(&obs.db.namespace, call, shape.as_deref(), &slow);
    if let Some(table) = &obs.slow_table {
        let class = opts
            .class
            .and_then(|i| obs.classes.classes.at(i))
            .map(|c| Arc::from(c.name()));
        let site = *site.lock();
        table.enqueue(slowlog::row(call, shape.as_deref(), &slow, class, site));
    }
}
