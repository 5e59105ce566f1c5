//! The report serializes as draft-inadarei-api-health-check `application/health+json`.

use crate::common;
use std::time::Duration;

use lido_http::{FnCheck, HealthChecker, HealthConfig, Observation, ServiceInfo, Status};
use serde_json::Value;

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, checked field by field.
fn assert_rfc3339(s: &str) {
    let b = s.as_bytes();
    assert_eq!(b.len(), 24, "{s}");
    for (i, c) in b.iter().enumerate() {
        let want = match i {
            4 | 7 => Some(b'-'),
            10 => Some(b'T'),
            13 | 16 => Some(b':'),
            19 => Some(b'.'),
            23 => Some(b'Z'),
            _ => None,
        };
        match want {
            Some(w) => assert_eq!(*c, w, "{s} at {i}"),
            None => assert!(c.is_ascii_digit(), "{s} at {i}"),
        }
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().expect("digits");
    assert!((1..=12).contains(&num(5..7)), "{s}");
    assert!((1..=31).contains(&num(8..10)), "{s}");
    assert!(
        num(11..13) < 24 && num(14..16) < 60 && num(17..19) < 61,
        "{s}"
    );
}

fn assert_entry(key: &str, e: &Value) {
    let o = e
        .as_object()
        .unwrap_or_else(|| panic!("{key}: entry not an object"));
    let allowed = [
        "componentId",
        "componentType",
        "observedValue",
        "observedUnit",
        "status",
        "time",
        "output",
        "threshold",
    ];
    for k in o.keys() {
        assert!(allowed.contains(&k.as_str()), "{key}: unexpected field {k}");
    }
    let status = o["status"].as_str().expect("status string");
    assert!(
        ["pass", "warn", "fail"].contains(&status),
        "{key}: {status}"
    );
    let ctype = o["componentType"].as_str().expect("componentType");
    assert!(
        ["datastore", "component", "system"].contains(&ctype),
        "{key}: {ctype}"
    );
    assert_rfc3339(o["time"].as_str().expect("time string"));
    if let Some(v) = o.get("observedValue") {
        assert!(v.is_number() || v.is_string(), "{key}: {v}");
        assert!(o["observedUnit"].is_string(), "{key}: value without unit");
    }
    // Every check says why, pass included (the draft only asks it of warn/fail).
    assert!(
        !o["output"].as_str().expect("output").is_empty(),
        "{key}: no reason"
    );
}

/// Built-in pool checks also carry their value, unit and levels.
fn assert_measured(key: &str, e: &Value) {
    assert!(e.get("observedValue").is_some(), "{key}: no value: {e}");
    let t = e["threshold"]
        .as_object()
        .unwrap_or_else(|| panic!("{key}: no threshold: {e}"));
    assert!(
        t.contains_key("warn") || t.contains_key("fail"),
        "{key}: {e}"
    );
}

#[tokio::test(start_paused = true)]
async fn report_matches_the_drafts_shape() {
    let (primary, knobs) = common::pool(4).await;
    let (replica, _) = common::pool(4).await;
    let cfg = HealthConfig {
        service: ServiceInfo {
            service_id: Some("orders-api".into()),
            description: Some("orders service".into()),
            version: Some("1".into()),
            release_id: Some("1.4.2".into()),
        },
        ..HealthConfig::default()
    };
    let checker = HealthChecker::new(cfg)
        .pool("primary", primary)
        .pool("replica", replica)
        .check(FnCheck::new("queue:depth", || async {
            Ok::<_, std::io::Error>(Observation::pass().value(7, "jobs"))
        }));
    knobs.set_check_delay(Duration::from_millis(250));
    let report = checker.run().await;
    assert_eq!(report.status, Status::Warn);

    let json = serde_json::to_value(&report).expect("serializes");
    assert_eq!(json, report.to_json());
    assert_eq!(json["status"], "warn");
    assert_eq!(json["serviceId"], "orders-api");
    assert_eq!(json["releaseId"], "1.4.2");
    assert_eq!(json["version"], "1");
    assert_eq!(json["description"], "orders service");
    assert!(json["output"]
        .as_str()
        .expect("top output")
        .contains("database:responseTime [primary] warn"));
    assert_rfc3339(json["time"].as_str().expect("time"));

    let checks = json["checks"].as_object().expect("checks object");
    for (key, list) in checks {
        let (component, measurement) = key.split_once(':').expect("component:measurement");
        assert!(!component.is_empty() && !measurement.is_empty() && !measurement.contains(':'));
        let list = list.as_array().expect("each key holds an array");
        assert!(!list.is_empty());
        for e in list {
            assert_entry(key, e);
            if e.get("componentId").is_some() {
                assert_measured(key, e);
            }
        }
    }
    let rt = checks["database:responseTime"].as_array().expect("array");
    let ids: Vec<&str> = rt
        .iter()
        .map(|e| e["componentId"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["primary", "replica"]);
    assert_eq!(rt[0]["status"], "warn");
    assert_eq!(rt[0]["observedValue"], 250.0);
    assert_eq!(rt[0]["observedUnit"], "ms");
    assert_eq!(rt[0]["threshold"]["warn"], 100.0);
    assert_eq!(rt[0]["threshold"]["fail"], 1000.0);
    assert_eq!(rt[1]["status"], "pass");
    let breaker = &checks["circuitBreaker:state"][0];
    assert_eq!(breaker["observedValue"], "closed");
    assert_eq!(breaker["threshold"]["warn"], "half_open");
    assert_eq!(breaker["threshold"]["fail"], "open");
    assert!(
        breaker["output"]
            .as_str()
            .expect("output")
            .contains("opens after 3 consecutive connect failures"),
        "{breaker}"
    );
    let maint = &checks["maintenance:age"][0];
    assert_eq!(maint["observedUnit"], "ms");
    assert!(maint["threshold"]["warn"].as_f64().expect("limit") > 0.0);
    assert_eq!(checks["queue:depth"][0]["observedValue"], 7);
    assert!(checks["queue:depth"][0].get("componentId").is_none());
}
