//! The compact terminal chart: one row per pool size with a Unicode block
//! bar of its throughput and one of its p99 latency, the recommended size
//! marked. Drawn when stdout is a terminal (or with `--chart-term`); colours
//! only on a terminal that wants them.

use std::fmt::Write as _;

use super::chart::{millis, thousands, ChartData};

/// Cells of the throughput bar.
const OPS_WIDTH: usize = 28;
/// Cells of the p99 bar.
const P99_WIDTH: usize = 18;
/// Eighths of a cell, from none to seven.
const EIGHTHS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
/// The bars of a sparkline, lowest first.
const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

const BLUE: &str = "\x1b[38;5;33m";
const ORANGE: &str = "\x1b[38;5;208m";
const GREEN_BOLD: &str = "\x1b[1;38;5;34m";
const RED: &str = "\x1b[38;5;160m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// Whether stdout is a terminal that wants colours (`NO_COLOR` unset, `TERM` not `dumb`).
pub fn colour_wanted() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stdout())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

/// Paints `text` in `colour` when `on`.
fn paint(on: bool, colour: &str, text: &str) -> String {
    if on && !text.is_empty() {
        format!("{colour}{text}{RESET}")
    } else {
        text.to_owned()
    }
}

/// A bar `frac` (0–1) of `width` cells, padded to `width`; anything above
/// zero shows at least a sliver.
pub fn bar(frac: f64, width: usize) -> String {
    let frac = if frac.is_finite() {
        frac.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let mut eighths = (frac * width as f64 * 8.0).round() as usize;
    if frac > 0.0 {
        eighths = eighths.max(1);
    }
    let mut out = "█".repeat(eighths / 8);
    if eighths % 8 > 0 {
        out.push(EIGHTHS[eighths % 8]);
    }
    let used = eighths.div_ceil(8);
    out.push_str(&" ".repeat(width.saturating_sub(used)));
    out
}

/// One character per value, scaled to the largest.
pub fn sparkline(values: &[f64]) -> String {
    let max = values.iter().copied().fold(0.0, f64::max);
    values
        .iter()
        .map(|v| {
            if max <= 0.0 || !v.is_finite() {
                SPARKS[0]
            } else {
                let i = ((v / max) * (SPARKS.len() - 1) as f64).round() as usize;
                SPARKS[i.min(SPARKS.len() - 1)]
            }
        })
        .collect()
}

/// The chart of `data`, colours when `colour`.
pub fn render(data: &ChartData, colour: bool) -> String {
    let mut out = String::new();
    if data.points.is_empty() {
        return out;
    }
    let ops: Vec<f64> = data.points.iter().map(|p| p.ops_per_sec).collect();
    let p99: Vec<f64> = data.points.iter().map(|p| p.p99_ms).collect();
    let _ = writeln!(
        out,
        "\nthroughput {}  p99 {}   (pool sizes: {})",
        paint(colour, BLUE, &sparkline(&ops)),
        paint(colour, ORANGE, &sparkline(&p99)),
        data.points
            .iter()
            .map(|p| p.size.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let _ = writeln!(
        out,
        "  {:>5}  {:<w1$} {:>9}   {:<w2$} {:>7}",
        "size",
        "throughput",
        "ops/s",
        "p99 latency",
        "ms",
        w1 = OPS_WIDTH,
        w2 = P99_WIDTH
    );
    let (max_ops, max_p99) = (data.max_ops(), data.max_p99_ms());
    for p in &data.points {
        let picked = data.recommended == Some(p.size);
        let ops_bar = bar(p.ops_per_sec / max_ops.max(f64::MIN_POSITIVE), OPS_WIDTH);
        let p99_bar = bar(p.p99_ms / max_p99.max(f64::MIN_POSITIVE), P99_WIDTH);
        let ops_colour = if p.failures > 0 { RED } else { BLUE };
        let mark = if picked { "▶" } else { " " };
        let mut note = String::new();
        if picked {
            note.push_str("  ◀ recommended");
        }
        if p.failures > 0 {
            let _ = write!(note, "  {} errors/timeouts", p.failures);
        }
        let size = format!("{mark} {:>5}", p.size);
        let _ = writeln!(
            out,
            "{}  {} {:>9}   {} {:>7}{}",
            paint(colour && picked, GREEN_BOLD, &size),
            paint(colour, ops_colour, &ops_bar),
            thousands(p.ops_per_sec),
            paint(colour, ORANGE, &p99_bar),
            millis(p.p99_ms),
            paint(colour, if picked { GREEN_BOLD } else { DIM }, &note)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::chart::ChartPoint;
    use super::*;

    fn data() -> ChartData {
        let p = |size, ops, p99_ms| ChartPoint {
            size,
            ops_per_sec: ops,
            p99_ms,
            failures: 0,
        };
        ChartData {
            target: "t".into(),
            workload: "w".into(),
            size_unit: "connections".into(),
            points: vec![p(1, 500.0, 1.0), p(2, 1000.0, 2.0), p(4, 990.0, 4.0)],
            recommended: Some(2),
        }
    }

    #[test]
    fn bars_scale_in_eighths_and_keep_their_width() {
        assert_eq!(bar(1.0, 4), "████");
        assert_eq!(bar(0.5, 4), "██  ");
        assert_eq!(bar(0.0, 4), "    ");
        assert_eq!(bar(0.001, 4), "▏   ", "a sliver for anything above zero");
        assert_eq!(bar(0.53125, 4), "██▏ ");
        assert_eq!(bar(f64::NAN, 3).chars().count(), 3);
        assert_eq!(sparkline(&[0.0, 0.5, 1.0]), "▁▅█");
    }

    #[test]
    fn a_row_per_size_with_the_pick_marked_and_no_escapes_without_colour() {
        let text = render(&data(), false);
        assert!(!text.contains('\x1b'), "{text}");
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(" ms") || l.contains('█'))
            .collect();
        assert!(rows.len() >= 3, "{text}");
        let pick: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("◀ recommended"))
            .collect();
        assert_eq!(pick.len(), 1, "{text}");
        assert!(pick[0].starts_with("▶     2"), "{text}");
        assert!(render(&data(), true).contains('\x1b'));
    }
}
