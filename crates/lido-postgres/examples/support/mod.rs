//! Shared by the measurement examples: deadlines and min/median/max; the
//! fault table's rounds ([`faults`]) and pools ([`pools`]).
#![allow(dead_code)]

pub mod faults;
pub mod pools;

use std::future::Future;
use std::time::Duration;

/// Longest any one wait in a measurement may take.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Waits for `fut` up to [`DEADLINE`]; past it, says what did not happen and exits 1.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(v) => v,
        Err(_) => {
            eprintln!("error: {what} did not happen within {DEADLINE:?}");
            std::process::exit(1);
        }
    }
}

/// `label: min … median … max … (n rounds: …)` in milliseconds.
pub fn summary(label: &str, figures: &mut [Duration]) -> String {
    figures.sort();
    let ms = |d: &Duration| d.as_secs_f64() * 1e3;
    let all: Vec<String> = figures.iter().map(|d| format!("{:.1}", ms(d))).collect();
    match (
        figures.first(),
        figures.get(figures.len() / 2),
        figures.last(),
    ) {
        (Some(min), Some(median), Some(max)) => format!(
            "{label}: min {:.1} ms, median {:.1} ms, max {:.1} ms ({} rounds: {} ms)",
            ms(min),
            ms(median),
            ms(max),
            figures.len(),
            all.join(", ")
        ),
        _ => format!("{label}: no rounds"),
    }
}
