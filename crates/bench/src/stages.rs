//! Where a resource's create-to-Ready time goes: the benchmark's own clock for the create and the
//! Ready it saw, the API server's audit log for the status write that made it Ready (received and
//! completed). One clock: audit timestamps are wall time, turned into seconds since the drive
//! began through one (Instant, wall time) pair taken together.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use crate::audit::audit_text;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

/// One resource's path to Ready as the benchmark saw it.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    pub(crate) name: String,
    /// Create request sent and answered.
    pub(crate) sent: Instant,
    pub(crate) answered: Instant,
    /// First seen Ready by the benchmark's watch.
    pub(crate) ready: Option<Instant>,
}

/// A moment known both as an Instant and as wall time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    instant: Instant,
    wall: Timestamp,
}

impl Clock {
    pub(crate) fn now() -> Clock {
        Clock {
            instant: Instant::now(),
            wall: Timestamp::now(),
        }
    }

    fn secs(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.instant).as_secs_f64()
            - self.instant.saturating_duration_since(at).as_secs_f64()
    }

    fn wall_secs(&self, at: Timestamp) -> f64 {
        at.duration_since(self.wall).as_secs_f64()
    }
}

/// The stages, each over every resource that has all of them.
pub(crate) const STAGES: [&str; 4] = [
    "create request (sent → answered)",
    "to the status write (create answered → write received)",
    "status write (received → done)",
    "to the watcher (write done → Ready seen)",
];

#[derive(Debug, Clone, Default)]
pub(crate) struct Stages {
    /// Resources with every stage known.
    pub(crate) resources: usize,
    /// Per stage: milliseconds for each resource, sorted.
    pub(crate) sorted_ms: [Vec<f64>; 4],
    /// The slowest 1% (create sent → Ready seen): mean milliseconds per stage.
    pub(crate) tail_mean_ms: [f64; 4],
    /// ... and where they stood in the creation order (0 first, 100 last), mean.
    pub(crate) tail_position: f64,
    pub(crate) tail_count: usize,
}

impl Stages {
    /// One line: p50/p99 per stage, then the slowest 1%.
    pub(crate) fn summary(&self) -> String {
        let mut line = String::new();
        for (stage, name) in STAGES.iter().enumerate() {
            let short = name.split(" (").next().unwrap_or(name);
            let _ = write!(
                line,
                "{short} {:.0}/{:.0} ms; ",
                self.pct(stage, 0.5),
                self.pct(stage, 0.99)
            );
        }
        let _ = write!(
            line,
            "slowest 1% ({}): {:.0}/{:.0}/{:.0}/{:.0} ms at {:.0}% of the creation order",
            self.tail_count,
            self.tail_mean_ms[0],
            self.tail_mean_ms[1],
            self.tail_mean_ms[2],
            self.tail_mean_ms[3],
            self.tail_position
        );
        line
    }

    pub(crate) fn pct(&self, stage: usize, q: f64) -> f64 {
        let v = &self.sorted_ms[stage];
        if v.is_empty() {
            return 0.0;
        }
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1]
    }
}

/// The first successful status write of each object in `namespace` between two offsets of the
/// audit log: (received, done) as wall time, by name.
fn status_writes(
    path: &Path,
    from: u64,
    to: u64,
    namespace: &str,
) -> HashMap<String, (Timestamp, Timestamp)> {
    let mut writes = HashMap::new();
    let ns_marker = format!("\"namespace\":\"{namespace}\"");
    for line in audit_text(path, from, to).lines() {
        if !line.contains("\"stage\":\"ResponseComplete\"")
            || !line.contains("\"subresource\":\"status\"")
            || !line.contains(&ns_marker)
        {
            continue;
        }
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let ok = event
            .pointer("/responseStatus/code")
            .and_then(Value::as_i64)
            .is_some_and(|c| (200..300).contains(&c));
        let verb = event.get("verb").and_then(Value::as_str);
        let name = event.pointer("/objectRef/name").and_then(Value::as_str);
        let time = |key: &str| {
            event
                .get(key)
                .and_then(Value::as_str)
                .and_then(|t| t.parse::<Timestamp>().ok())
        };
        if let (true, Some("patch" | "update"), Some(name), Some(received), Some(done)) = (
            ok,
            verb,
            name,
            time("requestReceivedTimestamp"),
            time("stageTimestamp"),
        ) {
            writes.entry(name.to_string()).or_insert((received, done));
        }
    }
    writes
}

/// Split each resource's create-to-Ready time into [`STAGES`].
pub(crate) fn stages(
    clock: &Clock,
    timelines: &[Timeline],
    audit: &Path,
    from: u64,
    to: u64,
    namespace: &str,
) -> Stages {
    let writes = status_writes(audit, from, to, namespace);
    // (total, stages, creation order)
    let mut rows: Vec<(f64, [f64; 4], usize)> = Vec::new();
    for (order, t) in timelines.iter().enumerate() {
        let (Some(ready), Some((received, done))) = (t.ready, writes.get(&t.name)) else {
            continue;
        };
        let (sent, answered, ready) = (
            clock.secs(t.sent),
            clock.secs(t.answered),
            clock.secs(ready),
        );
        let (received, done) = (clock.wall_secs(*received), clock.wall_secs(*done));
        let ms = |a: f64, b: f64| (b - a) * 1000.0;
        rows.push((
            ms(sent, ready),
            [
                ms(sent, answered),
                ms(answered, received),
                ms(received, done),
                ms(done, ready),
            ],
            order,
        ));
    }
    let mut out = Stages {
        resources: rows.len(),
        ..Stages::default()
    };
    for (stage, sorted) in out.sorted_ms.iter_mut().enumerate() {
        *sorted = rows.iter().map(|r| r.1[stage]).collect();
        sorted.sort_unstable_by(f64::total_cmp);
    }
    rows.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    let tail = &rows[..rows.len().div_ceil(100).min(rows.len())];
    out.tail_count = tail.len();
    if !tail.is_empty() {
        let count = tail.len() as f64;
        for stage in 0..4 {
            out.tail_mean_ms[stage] = tail.iter().map(|r| r.1[stage]).sum::<f64>() / count;
        }
        out.tail_position = tail
            .iter()
            .map(|r| 100.0 * r.2 as f64 / timelines.len().max(1) as f64)
            .sum::<f64>()
            / count;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn stages_add_up_to_create_to_ready() {
        let clock = Clock::now();
        let at = |ms: u64| clock.instant + Duration::from_millis(ms);
        let wall = |ms: i64| {
            clock
                .wall
                .checked_add(k8s_openapi::jiff::SignedDuration::from_millis(ms))
                .expect("a time")
        };
        let dir = tempfile::tempdir().expect("a temp dir");
        let audit = dir.path().join("audit.log");
        let line = |name: &str, code: u16, received: i64, done: i64| {
            json!({"stage": "ResponseComplete", "verb": "patch",
                "objectRef": {"resource": "ssoappcredentials", "namespace": "ns", "name": name, "subresource": "status"},
                "responseStatus": {"code": code},
                "requestReceivedTimestamp": wall(received).to_string(),
                "stageTimestamp": wall(done).to_string()})
            .to_string()
        };
        let text = [
            line("a", 409, 5, 6),
            line("a", 200, 100, 150),
            line("a", 200, 300, 320),
            line("b", 200, 200, 400),
        ]
        .join("\n");
        std::fs::write(&audit, &text).expect("write");
        let timelines = vec![
            Timeline {
                name: "a".into(),
                sent: at(0),
                answered: at(40),
                ready: Some(at(170)),
            },
            Timeline {
                name: "b".into(),
                sent: at(10),
                answered: at(60),
                ready: Some(at(450)),
            },
            Timeline {
                name: "never-ready".into(),
                sent: at(20),
                answered: at(30),
                ready: None,
            },
        ];
        let s = stages(&clock, &timelines, &audit, 0, text.len() as u64, "ns");
        assert_eq!(s.resources, 2);
        // a: 40 + 60 + 50 + 20 = 170; b: 50 + 140 + 200 + 50 = 440.
        let near = |x: f64, y: f64| (x - y).abs() < 1.0;
        assert!(near(s.pct(0, 0.5), 40.0) && near(s.pct(0, 1.0), 50.0));
        assert!(near(s.pct(1, 1.0), 140.0) && near(s.pct(2, 0.5), 50.0));
        assert!(near(s.pct(3, 1.0), 50.0));
        // The slowest 1% of two is b, second of three created.
        assert_eq!(s.tail_count, 1);
        assert!(near(s.tail_mean_ms[2], 200.0));
        assert!(near(s.tail_position, 100.0 / 3.0));
    }
}
