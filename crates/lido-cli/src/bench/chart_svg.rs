//! The `--chart FILE` picture: a hand-written SVG of throughput (left axis,
//! ops/s) and p99 latency (right axis, ms) against pool size, with the
//! recommended size marked by a vertical line.
//!
//! Pool sizes sit at even steps along the x axis (in the order measured), so
//! a doubling sweep (1, 2, 4, …) reads as evenly as a linear one. Every point
//! carries `data-size` and a `<title>` tooltip; the marker line has
//! `id="recommended"`.

use std::fmt::Write as _;
use std::path::Path;

use super::chart::{millis, thousands, ChartData};

const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 500.0;
/// The plot area.
const LEFT: f64 = 90.0;
const RIGHT: f64 = WIDTH - 90.0;
const TOP: f64 = 118.0;
const BOTTOM: f64 = HEIGHT - 64.0;

const HEADROOM: f64 = 1.04;
const FONT: &str = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif";
const WHITE: &str = "#ffffff";
const INK: &str = "#1f2937";
const MUTED: &str = "#6b7280";
const GRID: &str = "#e5e7eb";
const OPS: &str = "#2563eb";
const P99: &str = "#ea580c";
const PICK: &str = "#16a34a";
const BAD: &str = "#dc2626";

/// Writes the chart of `data` to `path`.
pub fn write(path: &Path, data: &ChartData) -> Result<(), String> {
    std::fs::write(path, render(data))
        .map_err(|e| format!("writing the chart to {}: {e}", path.display()))
}

/// The chart of `data` as an SVG document.
pub fn render(data: &ChartData) -> String {
    // A little headroom so the highest point does not touch the top.
    let ops = Scale::nice(data.max_ops() * HEADROOM);
    let p99 = Scale::with_divisions(data.max_p99_ms() * HEADROOM, ops.divisions());
    let mut s = String::with_capacity(8 * 1024);
    let _ = write!(
        s,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="{FONT}" role="img" aria-labelledby="chart-title">
<rect width="{WIDTH}" height="{HEIGHT}" rx="12" fill="{WHITE}"/>
"#
    );
    header(&mut s, data);
    grid(&mut s, &ops, &p99);
    x_axis(&mut s, data);
    recommended(&mut s, data);
    series(&mut s, data, &ops, &p99);
    legend(&mut s, data);
    s.push_str("</svg>\n");
    s
}

/// An axis from 0 to `max` in `ticks` steps of `step`.
struct Scale {
    max: f64,
    step: f64,
}

impl Scale {
    /// 0 to a round number at or above `top`, in about 4 to 6 round steps.
    fn nice(top: f64) -> Self {
        let top = positive(top);
        let step = nice_step(top / 6.0);
        Self {
            max: (top / step).ceil() * step,
            step,
        }
    }

    /// 0 to `top` or above in exactly `divisions` round steps, so that a
    /// second axis shares the first one's grid lines.
    fn with_divisions(top: f64, divisions: usize) -> Self {
        let n = divisions.max(1) as f64;
        let step = nice_step(positive(top) / n);
        Self {
            max: step * n,
            step,
        }
    }

    fn divisions(&self) -> usize {
        (self.max / self.step).round() as usize
    }

    fn ticks(&self) -> impl Iterator<Item = f64> + '_ {
        let n = (self.max / self.step).round() as usize;
        (0..=n).map(move |i| i as f64 * self.step)
    }

    fn y(&self, v: f64) -> f64 {
        BOTTOM - (v / self.max).clamp(0.0, 1.0) * (BOTTOM - TOP)
    }
}

fn positive(v: f64) -> f64 {
    if v.is_finite() && v > 0.0 {
        v
    } else {
        1.0
    }
}

/// The smallest of 1, 2, 2.5, 5 × 10^k at or above `raw`.
fn nice_step(raw: f64) -> f64 {
    let pow = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * pow)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * pow)
}

/// Decimals that show every multiple of `step` exactly (up to 3).
fn decimals(step: f64) -> usize {
    (0..3)
        .find(|d| {
            let scaled = step * 10f64.powi(*d as i32);
            (scaled - scaled.round()).abs() < 1e-6
        })
        .unwrap_or(3)
}

/// x of the `i`-th of `n` points.
fn x_at(i: usize, n: usize) -> f64 {
    LEFT + (i as f64 + 0.5) * (RIGHT - LEFT) / n.max(1) as f64
}

/// Escapes text for XML content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters, with an ellipsis when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn header(s: &mut String, data: &ChartData) {
    let title = clip(&format!("lido bench: {}", data.target), 84);
    let _ = write!(
        s,
        r#"<text id="chart-title" x="{LEFT}" y="34" font-size="19" font-weight="600" fill="{INK}">{}</text>
<text x="{LEFT}" y="58" font-size="13.5" fill="{MUTED}">{}</text>
"#,
        esc(&title),
        esc(&clip(
            &format!(
                "Throughput and p99 latency by pool size — {}",
                data.workload
            ),
            110
        ))
    );
}

fn ops_label(v: f64, step: f64) -> String {
    if step >= 100.0 && v >= 1000.0 {
        let d = decimals(step / 1000.0);
        format!("{:.d$}k", v / 1000.0)
    } else {
        let d = decimals(step);
        if d == 0 {
            thousands(v)
        } else {
            format!("{v:.d$}")
        }
    }
}

fn ms_label(v: f64, step: f64) -> String {
    let d = decimals(step);
    format!("{v:.d$}")
}

fn grid(s: &mut String, ops: &Scale, p99: &Scale) {
    s.push_str("<g id=\"grid\" font-size=\"12\">\n");
    for v in ops.ticks() {
        let y = ops.y(v);
        let _ = writeln!(
            s,
            r#"<line x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}" stroke="{GRID}" stroke-width="1"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="{OPS}">{}</text>"#,
            LEFT - 10.0,
            y + 4.0,
            ops_label(v, ops.step)
        );
    }
    for v in p99.ticks() {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" fill="{P99}">{}</text>"#,
            RIGHT + 10.0,
            p99.y(v) + 4.0,
            ms_label(v, p99.step)
        );
    }
    let mid = (TOP + BOTTOM) / 2.0;
    let _ = write!(
        s,
        r#"<text transform="translate(26 {mid:.1}) rotate(-90)" text-anchor="middle" font-size="13" font-weight="600" fill="{OPS}">throughput (ops/s)</text>
<text transform="translate({:.1} {mid:.1}) rotate(90)" text-anchor="middle" font-size="13" font-weight="600" fill="{P99}">p99 latency (ms)</text>
<line x1="{LEFT}" y1="{BOTTOM}" x2="{RIGHT}" y2="{BOTTOM}" stroke="{MUTED}" stroke-width="1.2"/>
</g>
"#,
        WIDTH - 24.0
    );
}

fn x_axis(s: &mut String, data: &ChartData) {
    let n = data.points.len();
    s.push_str("<g id=\"x-axis\" font-size=\"12.5\" text-anchor=\"middle\">\n");
    for (i, p) in data.points.iter().enumerate() {
        let x = x_at(i, n);
        let _ = writeln!(
            s,
            r#"<line x1="{x:.1}" y1="{BOTTOM}" x2="{x:.1}" y2="{:.1}" stroke="{MUTED}"/><text x="{x:.1}" y="{:.1}" fill="{INK}">{}</text>"#,
            BOTTOM + 5.0,
            BOTTOM + 20.0,
            p.size
        );
    }
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" font-size="13" font-weight="600" fill="{INK}">pool size ({})</text>
</g>
"#,
        (LEFT + RIGHT) / 2.0,
        HEIGHT - 18.0,
        esc(&data.size_unit)
    );
}

fn recommended(s: &mut String, data: &ChartData) {
    let n = data.points.len();
    let Some((i, size)) = data.recommended.and_then(|r| {
        let i = data.points.iter().position(|p| p.size == r)?;
        Some((i, r))
    }) else {
        return;
    };
    let x = x_at(i, n);
    let band = (RIGHT - LEFT) / n.max(1) as f64;
    let anchor = if i + 1 == n && n > 1 {
        "end"
    } else if i == 0 && n > 1 {
        "start"
    } else {
        "middle"
    };
    let tx = match anchor {
        "end" => x + 6.0,
        "start" => x - 6.0,
        _ => x,
    };
    let _ = write!(
        s,
        r#"<g id="recommended" data-size="{size}">
<rect x="{:.1}" y="{TOP}" width="{:.1}" height="{:.1}" fill="{PICK}" fill-opacity="0.07"/>
<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{BOTTOM}" stroke="{PICK}" stroke-width="2" stroke-dasharray="6 4"/>
<text x="{tx:.1}" y="{:.1}" text-anchor="{anchor}" font-size="13" font-weight="600" fill="{PICK}">recommended: {size}</text>
</g>
"#,
        x - band / 2.0,
        band,
        BOTTOM - TOP,
        TOP - 6.0,
        TOP - 12.0
    );
}

fn series(s: &mut String, data: &ChartData, ops: &Scale, p99: &Scale) {
    let n = data.points.len();
    let line = |f: &dyn Fn(usize) -> f64| -> String {
        (0..n)
            .map(|i| format!("{:.1},{:.1}", x_at(i, n), f(i)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let ops_line = line(&|i| ops.y(data.points[i].ops_per_sec));
    let p99_line = line(&|i| p99.y(data.points[i].p99_ms));
    let _ = writeln!(
        s,
        r#"<polyline id="p99-line" points="{p99_line}" fill="none" stroke="{P99}" stroke-width="2.5" stroke-dasharray="7 5" stroke-linejoin="round"/>
<polyline id="throughput-line" points="{ops_line}" fill="none" stroke="{OPS}" stroke-width="3" stroke-linejoin="round"/>"#
    );
    s.push_str("<g id=\"points\">\n");
    for (i, p) in data.points.iter().enumerate() {
        let x = x_at(i, n);
        let failed = if p.failures > 0 {
            format!(", {} errors or timeouts", p.failures)
        } else {
            String::new()
        };
        let fill = if p.failures > 0 { BAD } else { OPS };
        let _ = writeln!(
            s,
            r#"<circle class="point p99" data-size="{}" cx="{x:.1}" cy="{:.1}" r="4.5" fill="{WHITE}" stroke="{P99}" stroke-width="2.5"><title>size {}: p99 {} ms</title></circle>
<circle class="point throughput" data-size="{}" cx="{x:.1}" cy="{:.1}" r="5.5" fill="{fill}" stroke="{WHITE}" stroke-width="1.5"><title>size {}: {} ops/s{}</title></circle>"#,
            p.size,
            p99.y(p.p99_ms),
            p.size,
            millis(p.p99_ms),
            p.size,
            ops.y(p.ops_per_sec),
            p.size,
            thousands(p.ops_per_sec),
            failed
        );
    }
    s.push_str("</g>\n");
}

fn legend(s: &mut String, data: &ChartData) {
    let y = 86.0;
    let mut x = LEFT;
    let _ = write!(
        s,
        r#"<g id="legend" font-size="13" fill="{INK}">
<line x1="{x}" y1="{y}" x2="{:.1}" y2="{y}" stroke="{OPS}" stroke-width="3"/><circle cx="{:.1}" cy="{y}" r="5" fill="{OPS}"/><text x="{:.1}" y="{:.1}">throughput (ops/s, left)</text>
"#,
        x + 28.0,
        x + 14.0,
        x + 36.0,
        y + 4.5
    );
    x += 210.0;
    let _ = writeln!(
        s,
        r#"<line x1="{x}" y1="{y}" x2="{:.1}" y2="{y}" stroke="{P99}" stroke-width="2.5" stroke-dasharray="7 5"/><circle cx="{:.1}" cy="{y}" r="4.5" fill="{WHITE}" stroke="{P99}" stroke-width="2.5"/><text x="{:.1}" y="{:.1}">p99 latency (ms, right)</text>"#,
        x + 28.0,
        x + 14.0,
        x + 36.0,
        y + 4.5
    );
    x += 200.0;
    if data.recommended.is_some() {
        let _ = writeln!(
            s,
            r#"<line x1="{x}" y1="{:.1}" x2="{x}" y2="{:.1}" stroke="{PICK}" stroke-width="2" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}">recommended size</text>"#,
            y - 8.0,
            y + 8.0,
            x + 10.0,
            y + 4.5
        );
        x += 150.0;
    }
    if data.points.iter().any(|p| p.failures > 0) {
        let _ = writeln!(
            s,
            r#"<circle cx="{:.1}" cy="{y}" r="5" fill="{BAD}"/><text x="{:.1}" y="{:.1}">errors or timeouts</text>"#,
            x + 5.0,
            x + 16.0,
            y + 4.5
        );
    }
    s.push_str("</g>\n");
}

#[cfg(test)]
mod tests {
    use super::super::chart::ChartPoint;
    use super::*;

    fn data() -> ChartData {
        let p = |size, ops, p99_ms, failures| ChartPoint {
            size,
            ops_per_sec: ops,
            p99_ms,
            failures,
        };
        ChartData {
            target: "PostgreSQL <db> & \"friends\"".into(),
            workload: "8 tasks, 10% writes".into(),
            size_unit: "connections".into(),
            points: vec![
                p(1, 900.0, 2.0, 0),
                p(2, 1800.0, 2.5, 0),
                p(4, 2100.0, 4.0, 1),
            ],
            recommended: Some(2),
        }
    }

    #[test]
    fn nice_scales_cover_the_data_in_round_steps() {
        let s = Scale::nice(2100.0);
        assert!(s.max >= 2100.0 && s.max <= 3000.0, "{}", s.max);
        assert_eq!(s.step, 500.0);
        assert_eq!(Scale::nice(0.0).max, 1.0);
        assert_eq!(Scale::nice(0.37).step, 0.1);
        assert!(Scale::nice(f64::NAN).max > 0.0);
        let right = Scale::with_divisions(11.8, s.divisions());
        assert_eq!(right.divisions(), s.divisions());
        assert!(right.max >= 11.8, "{}", right.max);
    }

    #[test]
    fn tick_labels_show_their_decimals() {
        assert_eq!(ms_label(7.5, 2.5), "7.5");
        assert_eq!(ms_label(4.0, 2.0), "4");
        assert_eq!(ms_label(0.25, 0.05), "0.25");
        assert_eq!(ops_label(2500.0, 500.0), "2.5k");
        assert_eq!(ops_label(15000.0, 2500.0), "15.0k");
        assert_eq!(ops_label(10000.0, 5000.0), "10k");
        assert_eq!(ops_label(750.0, 250.0), "750");
    }

    #[test]
    fn escapes_text_and_marks_points_and_the_pick() {
        let svg = render(&data());
        assert!(
            svg.contains("&lt;db&gt; &amp; &quot;friends&quot;"),
            "{svg}"
        );
        assert_eq!(svg.matches("class=\"point throughput\"").count(), 3);
        assert_eq!(svg.matches("class=\"point p99\"").count(), 3);
        assert!(svg.contains("id=\"recommended\" data-size=\"2\""));
        assert!(svg.contains("recommended: 2"));
        assert!(svg.contains("errors or timeouts"));
    }

    #[test]
    fn no_pick_no_marker() {
        let mut d = data();
        d.recommended = None;
        d.points.clear();
        let svg = render(&d);
        assert!(!svg.contains("id=\"recommended\""));
        assert!(svg.ends_with("</svg>\n"));
    }

    #[test]
    fn long_titles_are_clipped() {
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
    }
}
