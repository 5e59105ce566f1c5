//! Settings: the production defaults, every validation error (each one names
//! the setting and how to fix it), and serde round-trips behind the feature.

use std::time::Duration;

use lido_core::{BreakerConfig, BuildError, Config, Pool, RetryConfig, ReuseOrder};
use lido_testkit::fake::Fake;

#[test]
fn defaults_never_wait_forever_and_validate_after_half_a_second_idle() {
    let cfg = Config::default();
    assert_eq!(cfg.acquire_timeout, Duration::from_secs(30));
    assert_eq!(cfg.validation_bypass, Duration::from_millis(500));
    assert_eq!(cfg.reuse_order, ReuseOrder::Lifo);
    assert!(cfg.max_lifetime.is_some() && cfg.lifetime_jitter > 0.0);
    assert!(cfg.leak_threshold.is_some(), "leak detection on by default");
    assert!(cfg.statistics);
    assert!(cfg.breaker.enabled);
    assert!(cfg.validate().is_ok());
}

fn invalid(cfg: Config) -> String {
    let err = cfg.validate().expect_err("invalid");
    err.to_string()
}

#[test]
fn every_invalid_setting_is_named_with_the_fix() {
    let base = Config::default;
    let cases: Vec<(Config, &str)> = vec![
        (
            Config {
                max_size: 0,
                ..base()
            },
            "max_size must be at least 1",
        ),
        (
            Config {
                max_size: 2,
                min_idle: 3,
                ..base()
            },
            "min_idle (3) must not exceed max_size (2)",
        ),
        (
            Config {
                core_size: Some(0),
                ..base()
            },
            "core_size (0)",
        ),
        (
            Config {
                min_idle: 4,
                core_size: Some(2),
                ..base()
            },
            "core_size (2) must be between max(1, min_idle = 4)",
        ),
        (
            Config {
                acquire_timeout: Duration::ZERO,
                ..base()
            },
            "acquire_timeout must be greater than zero",
        ),
        (
            Config {
                connect_timeout: Duration::ZERO,
                ..base()
            },
            "connect_timeout must be greater than zero",
        ),
        (
            Config {
                idle_timeout: Some(Duration::ZERO),
                ..base()
            },
            "idle_timeout must be greater than zero",
        ),
        (
            Config {
                lifetime_jitter: 0.9,
                ..base()
            },
            "lifetime_jitter = 0.9 is out of range: use 0.0 to 0.5",
        ),
        (
            Config {
                retry: RetryConfig {
                    max_attempts: 0,
                    ..Default::default()
                },
                ..base()
            },
            "retry.max_attempts must be at least 1",
        ),
        (
            Config {
                retry: RetryConfig {
                    base: Duration::from_secs(2),
                    cap: Duration::from_secs(1),
                    ..Default::default()
                },
                ..base()
            },
            "retry.cap must be at least retry.base",
        ),
        (
            Config {
                breaker: BreakerConfig {
                    failure_rate: 1.5,
                    ..Default::default()
                },
                ..base()
            },
            "breaker.failure_rate = 1.5 is out of range",
        ),
        (
            Config {
                breaker: BreakerConfig {
                    open_for: Duration::ZERO,
                    ..Default::default()
                },
                ..base()
            },
            "breaker.open_for must be greater than zero",
        ),
    ];
    for (cfg, want) in cases {
        let got = invalid(cfg);
        assert!(got.contains(want), "{got:?} should contain {want:?}");
    }
}

#[test]
fn a_disabled_breaker_is_not_validated() {
    let cfg = Config {
        breaker: BreakerConfig {
            enabled: false,
            failure_rate: 7.0,
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(cfg.validate().is_ok());
}

#[tokio::test]
async fn the_builder_refuses_invalid_settings_with_a_typed_error() {
    let (m, _) = Fake::new();
    let err = Pool::builder(m).max_size(2).min_idle(5).build().await;
    assert!(matches!(
        err,
        Err(BuildError::MinIdleAboveMax {
            min_idle: 5,
            max_size: 2
        })
    ));
    let (m, _) = Fake::new();
    let pool = Pool::builder(m).max_size(2).build().await.expect("build");
    assert!(matches!(pool.resize(0), Err(BuildError::ZeroMaxSize)));
}

#[cfg(feature = "serde")]
#[test]
fn config_round_trips_through_serde_with_human_durations() {
    let json = r#"{"max_size": 16, "min_idle": 2, "acquire_timeout": "5s",
                   "max_lifetime": "30m", "reuse_order": "fifo",
                   "retry": {"base": "10ms"}, "breaker": {"open_for": "2s"}}"#;
    let cfg: Config = serde_json::from_str(json).expect("parse");
    assert_eq!(cfg.max_size, 16);
    assert_eq!(cfg.acquire_timeout, Duration::from_secs(5));
    assert_eq!(cfg.max_lifetime, Some(Duration::from_secs(1800)));
    assert_eq!(cfg.reuse_order, ReuseOrder::Fifo);
    assert_eq!(cfg.retry.base, Duration::from_millis(10));
    assert_eq!(
        cfg.retry.cap,
        RetryConfig::default().cap,
        "unset fields keep defaults"
    );
    assert_eq!(cfg.breaker.open_for, Duration::from_secs(2));
    let back: Config =
        serde_json::from_str(&serde_json::to_string(&cfg).expect("write")).expect("read back");
    assert_eq!(back, cfg);
}

#[cfg(feature = "serde")]
#[test]
fn query_classes_load_from_a_settings_file() {
    use lido_core::{ClassesConfig, ClassesConfigError, Priority};
    let json = r#"{
        "classes": [{"name": "reports", "deadline": "2m", "priority": "background",
                     "slow_threshold": "20s", "retries": 0}],
        "tables": {"audit_log": "batch"},
        "fingerprints": {"00000000000000ff": "realtime"},
        "default": "standard"
    }"#;
    let cfg: ClassesConfig = serde_json::from_str(json).expect("parse");
    let classes = cfg.build().expect("valid");
    let reports = classes.get("reports").expect("added");
    assert_eq!(reports.deadline, Some(Duration::from_secs(120)));
    assert_eq!(reports.priority, Priority::Background);
    assert_eq!(
        reports.near_timeout, 0.8,
        "unset fields keep the standard settings"
    );
    let info = lido_core::StatementInfo {
        sql: "SELECT 1",
        fingerprint: Some(0xff),
        tables: &[],
    };
    assert_eq!(classes.classify(&info).map(|c| c.name()), Some("realtime"));

    let bad: ClassesConfig = serde_json::from_str(r#"{"tables": {"t": "fast"}}"#).expect("parse");
    let err = bad.build().expect_err("no class fast");
    assert!(matches!(err, ClassesConfigError::Unknown(_)), "{err}");
    let bad: ClassesConfig =
        serde_json::from_str(r#"{"fingerprints": {"xyz": "batch"}}"#).expect("parse");
    assert!(matches!(
        bad.build(),
        Err(ClassesConfigError::Fingerprint(_))
    ));
}
