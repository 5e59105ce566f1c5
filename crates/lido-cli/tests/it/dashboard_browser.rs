//! The `lido serve` dashboard in a real headless Chromium (WebDriver):
//! charts draw data, numbers move under load, history survives a reload,
//! the health panel turns red when PostgreSQL stops, no JavaScript error,
//! no password on the page. Skipped, saying so, where Chromium or
//! chromedriver is not installed. `dashboard_screenshots` (ignored; run by
//! `scripts/screenshots`) writes docs/img/dashboard-{healthy,down}.png.

use std::time::{Duration, Instant};

use lido_testkit::PgServer;
use serde_json::Value;

use crate::common::{get, serve, Served};
use crate::dashboard_webdriver::{missing_browser, Browser};

/// Every chart has drawn at least this many points (the smallest count).
const CHARTS_MIN_POINTS: &str = "return Math.min(...[...document.querySelectorAll('canvas[data-chart]')].map(c => Number(c.dataset.points || 0)));";
/// The tiles' numbers, one string.
const TILES: &str =
    "return [...document.querySelectorAll('#pools .tile b')].map(e => e.textContent).join('|');";
/// The health panel: its status and background colour.
const HEALTH: &str = "const h = document.getElementById('health'); return [h.dataset.status, getComputedStyle(h).backgroundColor, document.getElementById('health-headline').textContent];";
/// Painted pixels (not transparent) in the connections chart.
const PAINTED: &str = "const c = document.querySelector('canvas[data-chart=conns]'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n;";

fn number(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn no_js_errors(b: &Browser) {
    let errors = b.js_errors();
    assert!(errors.is_empty(), "JavaScript errors: {errors:?}");
}

#[test]
fn dashboard_draws_live_charts_in_chromium() {
    if let Some(why) = missing_browser() {
        println!("dashboard_draws_live_charts_in_chromium {why}");
        return;
    }
    let started = Instant::now();
    let s = serve(&["--demo-load", "3"]);
    let b = Browser::start(1400, 1000);
    b.goto(&format!("http://{}/", s.addr));
    let limit = Duration::from_secs(60);
    let (n, _) = b.wait_for(CHARTS_MIN_POINTS, limit, |v| number(v) >= 2.0);
    assert!(number(&n) >= 2.0);
    assert!(number(&b.eval(PAINTED)) > 100.0, "the chart is painted");
    let (first, _) = b.wait_for(TILES, limit, |v| v.as_str().is_some_and(|s| !s.is_empty()));
    let (second, _) = b.wait_for(TILES, limit, |v| *v != first);
    assert_ne!(first, second, "the numbers move under load");
    let (ok, _) = b.wait_for(HEALTH, limit, |v| v[0] == "pass" || v[0] == "warn");
    println!("health panel: {ok}");
    let note = b.eval("return document.getElementById('statements-note').textContent;");
    assert!(
        note.as_str()
            .unwrap_or("")
            .contains("PostgreSQL pools only"),
        "{note}"
    );

    let before = number(&b.eval(CHARTS_MIN_POINTS));
    b.goto(&format!("http://{}/", s.addr));
    let (after, _) = b.wait_for(CHARTS_MIN_POINTS, limit, |v| number(v) > 0.0);
    assert!(
        number(&after) >= before,
        "a reload starts with the server's history: {after} points, {before} before"
    );
    no_js_errors(&b);
    let series = get(s.addr, "/dashboard/series");
    let doc: Value = serde_json::from_str(&series.body).expect("series JSON");
    assert!(
        doc["pools"][0]["points"]
            .as_array()
            .is_some_and(|p| p.len() >= 2),
        "{doc}"
    );
    println!("browser test (SQLite) took {:?}", started.elapsed());
}

/// Starts PostgreSQL, `lido serve` on it with demo load and the dashboard.
fn postgres_dashboard(width: u32, height: u32) -> (PgServer, String, Served, Browser) {
    let server = PgServer::start().expect("start PostgreSQL");
    let db = server.create_database().expect("create database");
    let url = server.url(&db);
    let s = serve(&[&url, "--demo-load", "3"]);
    let b = Browser::start(width, height);
    b.goto(&format!("http://{}/", s.addr));
    (server, db, s, b)
}

const STATEMENT_ROWS: &str = "return document.querySelectorAll('#statements td.sql').length;";

#[test]
fn health_panel_turns_red_when_postgres_stops() {
    if let Some(why) = missing_browser() {
        println!("health_panel_turns_red_when_postgres_stops {why}");
        return;
    }
    let started = Instant::now();
    let (server, _db, s, b) = postgres_dashboard(1400, 1000);
    let limit = Duration::from_secs(60);
    b.wait_for(HEALTH, limit, |v| v[0] == "pass");
    b.wait_for(CHARTS_MIN_POINTS, limit, |v| number(v) >= 2.0);
    b.wait_for(STATEMENT_ROWS, limit, |v| number(v) > 0.0);
    b.eval("document.querySelector('#statements button[data-order=calls]').click(); return 0;");
    b.wait_for(
        "return document.getElementById('statements-note').textContent;",
        limit,
        |v| v.as_str().is_some_and(|t| t.contains("by calls")),
    );

    server.stop().expect("stop PostgreSQL");
    let (red, took) = b.wait_for(HEALTH, Duration::from_secs(30), |v| v[0] == "fail");
    println!("health panel red {took:?} after PostgreSQL stopped: {red}");
    let rgb: Vec<u32> = red[1]
        .as_str()
        .unwrap_or("")
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert!(
        rgb.len() >= 3 && rgb[0] > rgb[1] + 10 && rgb[0] > rgb[2] + 10,
        "a red background: {red}"
    );
    b.wait_for(
        "return [...document.querySelectorAll('.tile.bad span')].map(e => e.textContent).join(',');",
        limit,
        |v| v.as_str().is_some_and(|t| t.contains("health")),
    );
    let text =
        b.eval("return document.documentElement.outerHTML.length + ':' + document.body.innerText;");
    let text = text.as_str().unwrap_or("");
    assert!(
        !text.contains(server.password()),
        "the password is on the page"
    );
    for path in [
        "/dashboard/series",
        "/statements",
        "/statements?order=errors",
    ] {
        let r = get(s.addr, path);
        assert_eq!(r.status, 200, "{path}");
        assert!(!r.body.contains(server.password()), "{path}");
    }
    no_js_errors(&b);
    println!("browser test (PostgreSQL) took {:?}", started.elapsed());
}

/// Writes docs/img/dashboard-healthy.png and dashboard-down.png (or into
/// `LIDO_SCREENSHOTS_DIR`). Run by `scripts/screenshots`.
#[test]
#[ignore = "writes the documentation's screenshots; run by scripts/screenshots"]
fn dashboard_screenshots() {
    if let Some(why) = missing_browser() {
        panic!("dashboard_screenshots {why}");
    }
    let dir = std::env::var("LIDO_SCREENSHOTS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/img")
        });
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    let (server, _db, _s, b) = postgres_dashboard(1440, 1900);
    let limit = Duration::from_secs(90);
    b.wait_for(HEALTH, limit, |v| v[0] == "pass");
    b.wait_for(CHARTS_MIN_POINTS, limit, |v| number(v) >= 40.0);
    b.wait_for(STATEMENT_ROWS, limit, |v| number(v) >= 3.0);
    std::thread::sleep(Duration::from_secs(2));
    std::fs::write(dir.join("dashboard-healthy.png"), b.screenshot()).expect("write PNG");
    server.stop().expect("stop PostgreSQL");
    b.wait_for(HEALTH, limit, |v| v[0] == "fail");
    std::thread::sleep(Duration::from_secs(8));
    std::fs::write(dir.join("dashboard-down.png"), b.screenshot()).expect("write PNG");
    no_js_errors(&b);
    println!("screenshots written to {}", dir.display());
}
