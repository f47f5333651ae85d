//! Events are best effort, as with client-go's recorder: a reconcile hands its event over and
//! never waits for the API server. Warnings go first and are always queued (up to a bound);
//! routine Normal events are rate-limited, so a burst of thousands of first syncs does not add
//! one API write per resource while those resources wait to become Ready. The status
//! conditions are the record; events tell people what changed and why.

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};
use tokio::sync::mpsc;

use crate::metrics;

/// Events waiting for the API server, per type; beyond this they are dropped (and counted).
const QUEUE_BOUND: usize = 1024;

/// Hands events to a background task that publishes them one at a time.
pub struct EventPublisher {
    warnings: mpsc::Sender<Queued>,
    normal: mpsc::Sender<Queued>,
    /// None: Normal events are off.
    normal_rate: Option<DefaultDirectRateLimiter>,
}

struct Queued {
    event: Event,
    reference: ObjectReference,
}

impl EventPublisher {
    /// Start the publishing task. `normal_per_second` Normal events a second are published
    /// (with a burst of ten seconds' worth); 0 turns Normal events off.
    pub fn start(recorder: Recorder, normal_per_second: u32) -> EventPublisher {
        let (warnings, warning_rx) = mpsc::channel(QUEUE_BOUND);
        let (normal, normal_rx) = mpsc::channel(QUEUE_BOUND);
        tokio::spawn(publish_all(recorder, warning_rx, normal_rx));
        let normal_rate = NonZeroU32::new(normal_per_second).map(|rate| {
            let burst = NonZeroU32::new(rate.get().saturating_mul(10)).unwrap_or(rate);
            RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
        });
        EventPublisher {
            warnings,
            normal,
            normal_rate,
        }
    }

    /// Queue `event` about the object `reference`; returns at once.
    pub fn publish(&self, event: Event, reference: ObjectReference) {
        let (queue, type_) = match event.type_ {
            EventType::Warning => (&self.warnings, "Warning"),
            EventType::Normal => {
                if self
                    .normal_rate
                    .as_ref()
                    .is_none_or(|rate| rate.check().is_err())
                {
                    metrics::event_dropped("Normal");
                    return;
                }
                (&self.normal, "Normal")
            }
        };
        if queue.try_send(Queued { event, reference }).is_err() {
            metrics::event_dropped(type_);
        }
    }
}

async fn publish_all(
    recorder: Recorder,
    mut warnings: mpsc::Receiver<Queued>,
    mut normal: mpsc::Receiver<Queued>,
) {
    loop {
        let next = tokio::select! {
            biased;
            Some(q) = warnings.recv() => q,
            Some(q) = normal.recv() => q,
            else => return,
        };
        if let Err(e) = recorder.publish(&next.event, &next.reference).await {
            tracing::debug!(error = %e, reason = %next.event.reason, "could not publish event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::events::Reporter;

    fn dropped(text: &str, type_: &str) -> u64 {
        let prefix = format!("credsync_events_dropped_total{{type=\"{type_}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn normal_events_beyond_the_rate_are_dropped_warnings_are_not() {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = kube::Client::try_from(config).expect("client");
        let reporter = Reporter {
            controller: "test".into(),
            instance: None,
        };
        let publisher = EventPublisher::start(Recorder::new(client, reporter), 2);
        let event = |type_| Event {
            type_,
            reason: "Synced".into(),
            note: None,
            action: "Reconcile".into(),
            secondary: None,
        };
        let before = crate::metrics::encode();
        for _ in 0..50 {
            publisher.publish(event(EventType::Normal), ObjectReference::default());
            publisher.publish(event(EventType::Warning), ObjectReference::default());
        }
        let after = crate::metrics::encode();
        // A burst of ten seconds' worth (20) passes; the other 30 are dropped.
        let normal = dropped(&after, "Normal") - dropped(&before, "Normal");
        // (Another test may count one more meanwhile: the metrics are process-wide.)
        assert!(
            (28..=31).contains(&normal),
            "{normal} Normal events dropped"
        );
        assert_eq!(dropped(&after, "Warning"), dropped(&before, "Warning"));
    }
}
