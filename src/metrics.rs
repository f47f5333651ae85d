//! Prometheus metrics, one process-wide registry. Labels are kinds, vendors, operations and
//! reasons: never names, namespaces or values.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::Vendor;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindOutcome {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindState {
    kind: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventTypeLabel {
    r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VendorOutcome {
    vendor: String,
    operation: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VendorOperation {
    vendor: String,
    operation: String,
}

struct Metrics {
    registry: Registry,
    reconciles: Family<KindOutcome, Counter>,
    reconcile_duration: Family<KindLabel, Histogram>,
    in_flight: Family<KindLabel, Gauge>,
    waiting: Family<KindLabel, Gauge>,
    status_writes: Family<KindLabel, Counter>,
    status_writes_deferred: Family<KindLabel, Counter>,
    vendor_requests: Family<VendorOutcome, Counter>,
    vendor_duration: Family<VendorOperation, Histogram>,
    events_dropped: Family<EventTypeLabel, Counter>,
    resources: Family<KindState, Gauge>,
    panics: Family<ComponentLabel, Counter>,
    webhook_reviews: Family<VerdictLabel, Counter>,
    webhook_duration: Histogram,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabel {
    verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ComponentLabel {
    component: String,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("credsync");
    let reconciles = Family::<KindOutcome, Counter>::default();
    registry.register(
        "reconciles",
        "Reconciles by kind and outcome (success, or the failure's condition reason)",
        reconciles.clone(),
    );
    let reconcile_duration = Family::<KindLabel, Histogram>::new_with_constructor(|| {
        Histogram::new(exponential_buckets(0.001, 2.0, 16))
    });
    registry.register(
        "reconcile_duration_seconds",
        "Time one reconcile took",
        reconcile_duration.clone(),
    );
    let in_flight = Family::<KindLabel, Gauge>::default();
    registry.register(
        "reconciles_in_flight",
        "Reconciles running now (the work queue's depth in progress)",
        in_flight.clone(),
    );
    let waiting = Family::<KindLabel, Gauge>::default();
    registry.register(
        "reconciles_waiting",
        "Reconciles waiting for a turn (--concurrency per kind), served first asked first; counted every 5 s",
        waiting.clone(),
    );
    let status_writes = Family::<KindLabel, Counter>::default();
    registry.register(
        "status_writes",
        "Status patches sent to the API server",
        status_writes.clone(),
    );
    let status_writes_deferred = Family::<KindLabel, Counter>::default();
    registry.register(
        "status_writes_deferred",
        "Bookkeeping-only status writes (lastSyncedTime, appliedFingerprint) owed during a burst, written once the operator is quiet (at most 5 s later)",
        status_writes_deferred.clone(),
    );
    let vendor_requests = Family::<VendorOutcome, Counter>::default();
    registry.register(
        "vendor_requests",
        "Vendor API requests by vendor, operation and outcome (success, transient_error, permanent_error, fenced)",
        vendor_requests.clone(),
    );
    let vendor_duration = Family::<VendorOperation, Histogram>::new_with_constructor(|| {
        Histogram::new(exponential_buckets(0.001, 2.0, 16))
    });
    registry.register(
        "vendor_request_duration_seconds",
        "Vendor API request latency",
        vendor_duration.clone(),
    );
    let events_dropped = Family::<EventTypeLabel, Counter>::default();
    registry.register(
        "events_dropped",
        "Kubernetes Events not published: over the Normal-event rate or the queue bound (events are best effort)",
        events_dropped.clone(),
    );
    let resources = Family::<KindState, Gauge>::default();
    registry.register(
        "resources",
        "Resources by kind and state: ready, progressing (the backlog still to sync: the queue depth) or stalled (waits for a person)",
        resources.clone(),
    );
    let panics = Family::<ComponentLabel, Counter>::default();
    registry.register(
        "panics",
        "Panics caught and isolated (a bug in credsync): the object's reconcile failed with reason InternalError, the process went on",
        panics.clone(),
    );
    let webhook_reviews = Family::<VerdictLabel, Counter>::default();
    registry.register(
        "webhook_reviews",
        "Admission reviews answered by the webhook, by verdict: allowed, refused (a Secret the user may not get), unchecked (the access check failed: refused), unreadable (the object: refused), malformed (not an AdmissionReview)",
        webhook_reviews.clone(),
    );
    let webhook_duration = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
    registry.register(
        "webhook_review_duration_seconds",
        "Time the webhook took to answer a review (its SubjectAccessReviews included); the API server gives up after the configuration's timeoutSeconds",
        webhook_duration.clone(),
    );
    Metrics {
        registry,
        panics,
        webhook_reviews,
        webhook_duration,
        reconciles,
        reconcile_duration,
        in_flight,
        waiting,
        status_writes,
        status_writes_deferred,
        vendor_requests,
        vendor_duration,
        events_dropped,
        resources,
    }
});

/// Count a finished reconcile.
pub fn reconcile_finished(kind: &str, outcome: &str, took: Duration) {
    let m = &*METRICS;
    m.reconciles
        .get_or_create(&KindOutcome {
            kind: kind.to_string(),
            outcome: outcome.to_string(),
        })
        .inc();
    m.reconcile_duration
        .get_or_create(&KindLabel {
            kind: kind.to_string(),
        })
        .observe(took.as_secs_f64());
}

/// Track a reconcile in progress until the guard drops.
pub fn reconcile_started(kind: &str) -> InFlight {
    let gauge = METRICS
        .in_flight
        .get_or_create(&KindLabel {
            kind: kind.to_string(),
        })
        .clone();
    gauge.inc();
    InFlight(gauge)
}

/// Decrements the in-flight gauge when dropped.
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Count a status patch.
pub fn status_written(kind: &str) {
    METRICS
        .status_writes
        .get_or_create(&KindLabel {
            kind: kind.to_string(),
        })
        .inc();
}

/// Count a status write owed until a burst is over.
pub fn status_write_deferred(kind: &str) {
    METRICS
        .status_writes_deferred
        .get_or_create(&KindLabel {
            kind: kind.to_string(),
        })
        .inc();
}

/// Resources of one kind by state.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ResourceCounts {
    pub ready: i64,
    pub progressing: i64,
    pub stalled: i64,
}

/// Record how many resources of `kind` are in each state.
pub fn set_resources(kind: &str, counts: &ResourceCounts) {
    for (state, n) in [
        ("ready", counts.ready),
        ("progressing", counts.progressing),
        ("stalled", counts.stalled),
    ] {
        METRICS
            .resources
            .get_or_create(&KindState {
                kind: kind.to_string(),
                state: state.to_string(),
            })
            .set(n);
    }
}

/// How many reconciles of `kind` wait for a turn.
pub fn set_waiting(kind: &str, waiting: usize) {
    METRICS
        .waiting
        .get_or_create(&KindLabel {
            kind: kind.to_string(),
        })
        .set(i64::try_from(waiting).unwrap_or(i64::MAX));
}

/// Count a panic caught in `component` (a kind, or "connection").
pub fn panicked(component: &str) {
    METRICS
        .panics
        .get_or_create(&ComponentLabel {
            component: component.to_string(),
        })
        .inc();
}

/// Count an event left unpublished.
pub fn event_dropped(type_: &str) {
    METRICS
        .events_dropped
        .get_or_create(&EventTypeLabel {
            r#type: type_.to_string(),
        })
        .inc();
}

/// Count a vendor request.
pub fn vendor_request(vendor: Vendor, operation: &str, outcome: &str, took: Duration) {
    let m = &*METRICS;
    m.vendor_requests
        .get_or_create(&VendorOutcome {
            vendor: vendor.to_string(),
            operation: operation.to_string(),
            outcome: outcome.to_string(),
        })
        .inc();
    m.vendor_duration
        .get_or_create(&VendorOperation {
            vendor: vendor.to_string(),
            operation: operation.to_string(),
        })
        .observe(took.as_secs_f64());
}

/// Count an admission review the webhook answered.
pub fn webhook_reviewed(verdict: &str, took: Duration) {
    let m = &*METRICS;
    m.webhook_reviews
        .get_or_create(&VerdictLabel {
            verdict: verdict.to_string(),
        })
        .inc();
    m.webhook_duration.observe(took.as_secs_f64());
}

/// The registry in Prometheus text format.
pub fn encode() -> String {
    let mut out = String::new();
    // Encoding into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &METRICS.registry);
    out
}

/// One sample in every family (for tests that need every family in the output: families
/// without samples are left out of it). Counts nothing real: tests and docs checks only.
#[doc(hidden)]
pub fn touch_all() {
    let kind = "Test";
    drop(reconcile_started(kind));
    reconcile_finished(kind, "success", Duration::ZERO);
    status_written(kind);
    status_write_deferred(kind);
    vendor_request(Vendor::HelloId, "Test", "success", Duration::ZERO);
    event_dropped("Normal");
    panicked(kind);
    set_resources(kind, &ResourceCounts::default());
    set_waiting(kind, 0);
    webhook_reviewed("allowed", Duration::ZERO);
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_family_is_exported() {
        super::touch_all();
        let text = super::encode();
        for family in [
            "credsync_reconciles",
            "credsync_reconcile_duration_seconds",
            "credsync_reconciles_in_flight",
            "credsync_reconciles_waiting",
            "credsync_status_writes",
            "credsync_status_writes_deferred",
            "credsync_vendor_requests",
            "credsync_vendor_request_duration_seconds",
            "credsync_events_dropped",
            "credsync_resources",
            "credsync_webhook_reviews",
            "credsync_webhook_review_duration_seconds",
        ] {
            assert!(text.contains(&format!("# TYPE {family} ")), "{text}");
        }
        assert!(
            text.contains("credsync_events_dropped_total{type=\"Normal\"} 1"),
            "{text}"
        );
    }
}
