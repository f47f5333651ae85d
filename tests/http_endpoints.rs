//! The operator's HTTP endpoints: /healthz, /readyz, and /metrics in valid Prometheus text with
//! the families dashboards rely on.

use std::time::Duration;

use credsync::api::Vendor;
use credsync::server::{Readiness, serve_on};

/// Check every line is a valid exposition line; return the metric family names seen in TYPE lines.
fn parse_exposition(text: &str) -> Vec<String> {
    let mut families = Vec::new();
    let mut saw_eof = false;
    for line in text.lines() {
        assert!(!saw_eof, "nothing may follow # EOF");
        if line == "# EOF" {
            saw_eof = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            assert!(
                matches!(kind, "HELP" | "TYPE" | "UNIT"),
                "bad comment line {line:?}"
            );
            assert!(is_name(name), "bad metric name in {line:?}");
            if kind == "TYPE" {
                let t = parts.next().unwrap_or("");
                assert!(
                    matches!(
                        t,
                        "counter" | "gauge" | "histogram" | "summary" | "info" | "unknown"
                    ),
                    "bad type in {line:?}"
                );
                families.push(name.to_string());
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("sample without value: {line:?}"));
        let value_ok = value.parse::<f64>().is_ok() || matches!(value, "+Inf" | "-Inf" | "NaN");
        assert!(value_ok, "bad value in {line:?}");
        let name = series.split('{').next().unwrap_or("");
        assert!(is_name(name), "bad sample name in {line:?}");
        if let Some(labels) = series.strip_prefix(name)
            && !labels.is_empty()
        {
            assert!(
                labels.starts_with('{') && labels.ends_with('}'),
                "bad labels in {line:?}"
            );
            for pair in labels[1..labels.len() - 1]
                .split("\",")
                .filter(|p| !p.is_empty())
            {
                let (k, v) = pair
                    .split_once("=\"")
                    .unwrap_or_else(|| panic!("bad label in {line:?}"));
                assert!(is_name(k), "bad label name in {line:?}");
                assert!(!v.trim_end_matches('"').contains('\n'));
            }
        }
    }
    assert!(saw_eof, "OpenMetrics text ends with # EOF");
    families
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
        })
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    credsync::metrics::reconcile_finished("SsoAppCredential", "success", Duration::from_millis(12));
    credsync::metrics::reconcile_finished(
        "SsoAppCredential",
        "VendorUnavailable",
        Duration::from_millis(3),
    );
    credsync::metrics::vendor_request(
        Vendor::HelloId,
        "SetCredentials",
        "success",
        Duration::from_millis(40),
    );
    credsync::metrics::status_written("SsoAppCredential");
    drop(credsync::metrics::reconcile_started("SsoAppCredential"));
    credsync::metrics::set_waiting("SsoAppCredential", 3);
    credsync::metrics::set_resources(
        "SsoAppCredential",
        &credsync::metrics::ResourceCounts {
            ready: 2,
            progressing: 1,
            stalled: 0,
        },
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let readiness = Readiness::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(serve_on(listener, readiness.clone(), {
        let stop = stop.clone();
        async move { stop.cancelled().await }
    }));
    let http = reqwest::Client::new();
    let get = |path: &str| {
        let http = http.clone();
        let url = format!("http://{addr}{path}");
        async move { http.get(url).send().await.expect("request") }
    };
    assert_eq!(get("/healthz").await.status(), 200);
    assert_eq!(
        get("/readyz").await.status(),
        503,
        "not ready before the caches sync"
    );
    readiness.set(true);
    assert_eq!(get("/readyz").await.status(), 200);

    let metrics = get("/metrics").await;
    assert!(
        metrics
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/openmetrics-text"))
    );
    let text = metrics.text().await.expect("body");
    let families = parse_exposition(&text);
    for family in [
        "credsync_reconciles",
        "credsync_reconcile_duration_seconds",
        "credsync_reconciles_in_flight",
        "credsync_reconciles_waiting",
        "credsync_status_writes",
        "credsync_vendor_requests",
        "credsync_vendor_request_duration_seconds",
        "credsync_resources",
    ] {
        assert!(
            families.iter().any(|f| f == family),
            "family {family} missing from:\n{text}"
        );
    }
    assert!(
        text.contains("credsync_reconciles_waiting{kind=\"SsoAppCredential\"} 3"),
        "{text}"
    );
    assert!(
        text.contains(
            "credsync_reconciles_total{kind=\"SsoAppCredential\",outcome=\"VendorUnavailable\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("credsync_resources{kind=\"SsoAppCredential\",state=\"progressing\"} 1"));
    assert!(text.contains("credsync_vendor_requests_total{vendor=\"helloId\",operation=\"SetCredentials\",outcome=\"success\"} 1"), "{text}");
    stop.cancel();
    let _ = server.await;
}
