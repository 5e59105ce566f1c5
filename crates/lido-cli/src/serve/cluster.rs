//! `lido serve` with several hosts: a [`PgCluster`] over the primary and its
//! streaming replicas, and the `/cluster` JSON the dashboard's Cluster panel
//! reads (one entry per node: role, up, rotation, lag, why it is out).
//!
//! The cluster is registered with the health monitor under the pool name
//! (readiness follows the primary; `cluster:replicas` warns while replicas
//! are out of rotation). Each node's pool is exported on `/metrics` as
//! `<name>@<host:port>` but not health-checked on its own: a replica that is
//! down is the replicas check's warning, not a failed ping that would fail
//! the whole report.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use lido_http::NamedPool;
use lido_postgres::cluster::{NodeReport, PgCluster};
use lido_postgres::PgConfig;
use serde_json::{json, Value};

use crate::args::ServeArgs;

/// Whether `cfg` names several servers (host or hostaddr lists), as `lido
/// check` decides it.
pub fn several_hosts(cfg: &PgConfig) -> bool {
    cfg.plan().targets().len() > 1
}

/// One node per host, each node's pool sized like serve's single pool.
/// Waits for the monitor's first round (at most its probe timeout); nodes
/// that are down are not an error: the monitor keeps probing them.
pub async fn open(cfg: PgConfig, args: &ServeArgs) -> Result<PgCluster, String> {
    let (max, min, acquire) = (
        usize::from(args.max_size),
        usize::from(args.min_idle),
        args.acquire_timeout,
    );
    PgCluster::builder(cfg)
        .node_pool(move |b| {
            b.application_name("lido serve")
                .max_size(max)
                .min_idle(min)
                .acquire_timeout(acquire)
        })
        .build()
        .await
        .map_err(|e| format!("cannot set up the PostgreSQL cluster: {e}"))
}

/// Every node's pool as `<name>@<host:port>`, for `/metrics`.
pub fn node_pools(cluster: &PgCluster, name: &str) -> Vec<NamedPool> {
    cluster
        .pools()
        .map(|(address, pool)| NamedPool::new(format!("{name}@{address}"), pool.clone()))
        .collect()
}

/// What `/cluster` reads.
struct Ctx {
    name: String,
    cluster: PgCluster,
    /// Scrubbed out of every reason a node gives (never serialized).
    password: Option<String>,
}

/// `GET /cluster`: the nodes as the monitor last found them.
pub fn router(name: &str, cluster: &PgCluster, cfg_password: Option<String>) -> Router {
    let ctx = Arc::new(Ctx {
        name: name.to_owned(),
        cluster: cluster.clone(),
        password: cfg_password,
    });
    Router::new().route("/cluster", get(nodes)).with_state(ctx)
}

async fn nodes(State(ctx): State<Arc<Ctx>>) -> Response {
    let body = document(
        &ctx.name,
        ctx.cluster.primary_address(),
        &ctx.cluster.nodes(),
        ctx.password.as_deref(),
    );
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body.to_string(),
    )
        .into_response()
}

/// The `/cluster` document: the pool name, the write target and one entry
/// per node in host-list order.
fn document(
    name: &str,
    primary: Option<&str>,
    nodes: &[NodeReport],
    password: Option<&str>,
) -> Value {
    let list: Vec<Value> = nodes
        .iter()
        .map(|n| node_json(n, primary == Some(n.address.as_str()), password))
        .collect();
    json!({ "pool": name, "primary": primary, "nodes": list })
}

fn node_json(n: &NodeReport, write_target: bool, password: Option<&str>) -> Value {
    let reason = n.reason.as_deref().map(|r| scrub(r, password));
    json!({
        "address": n.address,
        "role": n.role.as_str(),
        "up": n.up,
        "write_target": write_target,
        "in_rotation": n.in_rotation,
        "lag_bytes": n.lag_bytes,
        "lag_ms": n.lag.map(ms),
        "replay_age_ms": n.replay_age.map(ms),
        "in_flight": n.in_flight,
        "reason": reason,
    })
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// `text` with the password replaced (a password of under 3 characters
/// would blank ordinary words, and is left alone).
fn scrub(text: &str, password: Option<&str>) -> String {
    match password {
        Some(p) if p.len() >= 3 => text.replace(p, "***"),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_never_carry_the_password() {
        assert_eq!(
            scrub("auth for hunter2 failed", Some("hunter2")),
            "auth for *** failed"
        );
        assert_eq!(scrub("a b", Some("a")), "a b");
        assert_eq!(scrub("down", None), "down");
    }

    #[test]
    fn durations_are_milliseconds_to_the_microsecond() {
        assert_eq!(ms(Duration::from_micros(1_500)), 1.5);
        assert_eq!(ms(Duration::ZERO), 0.0);
    }
}
