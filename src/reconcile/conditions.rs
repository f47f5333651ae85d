//! kstatus conditions: Ready is the summary, Reconciling says work or a retry is under way,
//! Stalled says a person is needed. `lastTransitionTime` moves only when a status flips.
//!
//! Reconciling and Stalled are "abnormal-true" (kstatus): present only while true, absent
//! otherwise. Two conditions written False on every object in sync would add about a third to
//! its status and managedFields, which the API server decodes, validates, stores and sends to
//! every watcher on each write.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

/// The state a reconcile ends in, as the three conditions show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// The vendor holds the desired state.
    Ready {
        reason: &'static str,
        message: String,
    },
    /// Work or a retry is under way.
    Progressing {
        reason: &'static str,
        message: String,
    },
    /// A person is needed.
    Stalled {
        reason: &'static str,
        message: String,
    },
    /// Not in sync, and on purpose: nothing is under way and nothing is wrong (a paused object
    /// whose spec or Secret changed). Ready=False without Reconciling or Stalled.
    Suspended {
        reason: &'static str,
        message: String,
    },
}

impl Health {
    pub fn reason(&self) -> &'static str {
        match self {
            Health::Ready { reason, .. }
            | Health::Progressing { reason, .. }
            | Health::Stalled { reason, .. }
            | Health::Suspended { reason, .. } => reason,
        }
    }
    pub fn message(&self) -> &str {
        match self {
            Health::Ready { message, .. }
            | Health::Progressing { message, .. }
            | Health::Stalled { message, .. }
            | Health::Suspended { message, .. } => message,
        }
    }
}

/// Rewrite `conditions` to show `health` for `generation`, keeping transition times of
/// conditions whose status did not change.
pub fn apply(
    conditions: &mut Vec<Condition>,
    health: &Health,
    generation: Option<i64>,
    now: &Time,
) {
    let reason = health.reason();
    let message = health.message();
    let ready = matches!(health, Health::Ready { .. });
    set(conditions, READY, ready, reason, message, generation, now);
    for (type_, on) in [
        (RECONCILING, matches!(health, Health::Progressing { .. })),
        (STALLED, matches!(health, Health::Stalled { .. })),
    ] {
        if on {
            set(conditions, type_, true, reason, message, generation, now);
        } else {
            conditions.retain(|c| c.type_ != type_);
        }
    }
}

fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    on: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) {
    let status = if on { "True" } else { "False" };
    let existing = conditions.iter_mut().find(|c| c.type_ == type_);
    let last_transition_time = match &existing {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => now.clone(),
    };
    let condition = Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: generation,
        last_transition_time,
    };
    match existing {
        Some(c) => *c = condition,
        None => conditions.push(condition),
    }
}

/// The condition of a type, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Now, as a Kubernetes time.
pub fn now() -> Time {
    Time(Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("time"))
    }

    #[test]
    fn transition_time_moves_only_on_flip() {
        let mut c = Vec::new();
        let ready = Health::Ready {
            reason: "Synced",
            message: "ok".into(),
        };
        apply(&mut c, &ready, Some(1), &t(10));
        apply(&mut c, &ready, Some(2), &t(20));
        let r = find(&c, READY).expect("ready");
        assert_eq!(
            (
                r.status.as_str(),
                &r.last_transition_time,
                r.observed_generation
            ),
            ("True", &t(10), Some(2))
        );
        let stalled = Health::Stalled {
            reason: "SecretNotFound",
            message: "x".into(),
        };
        apply(&mut c, &stalled, Some(2), &t(30));
        apply(&mut c, &stalled, Some(3), &t(40));
        assert_eq!(
            find(&c, READY).map(|r| (r.status.as_str(), &r.last_transition_time)),
            Some(("False", &t(30)))
        );
        let s = find(&c, STALLED).expect("stalled");
        assert_eq!(
            (
                s.status.as_str(),
                &s.last_transition_time,
                s.observed_generation
            ),
            ("True", &t(30), Some(3))
        );
    }

    #[test]
    fn reconciling_and_stalled_are_present_only_while_true() {
        let types = |c: &[Condition]| {
            c.iter()
                .map(|c| (c.type_.clone(), c.status.clone()))
                .collect::<Vec<_>>()
        };
        let pair = |t: &str, s: &str| (t.to_string(), s.to_string());
        let mut c = Vec::new();
        let retrying = Health::Progressing {
            reason: "VendorUnavailable",
            message: "503".into(),
        };
        apply(&mut c, &retrying, Some(1), &t(10));
        assert_eq!(types(&c), [pair(READY, "False"), pair(RECONCILING, "True")]);
        let stalled = Health::Stalled {
            reason: "VendorRejected",
            message: "400".into(),
        };
        apply(&mut c, &stalled, Some(1), &t(20));
        assert_eq!(types(&c), [pair(READY, "False"), pair(STALLED, "True")]);
        let ready = Health::Ready {
            reason: "Synced",
            message: "ok".into(),
        };
        apply(&mut c, &ready, Some(1), &t(30));
        assert_eq!(types(&c), [pair(READY, "True")]);
        // Conditions an earlier credsync build wrote False are dropped too.
        let written_false = |type_: &str, why: &str| Condition {
            type_: type_.into(),
            status: "False".into(),
            reason: why.into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: t(1),
        };
        let mut old = vec![
            written_false(RECONCILING, "Idle"),
            written_false(STALLED, "Healthy"),
        ];
        apply(&mut old, &ready, Some(1), &t(30));
        assert_eq!(types(&old), [pair(READY, "True")]);
    }
}
