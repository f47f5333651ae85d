//! kstatus conditions: Ready is the summary, Reconciling says work or a retry is under way,
//! Stalled says a person is needed. `lastTransitionTime` moves only when a status flips.

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
}

impl Health {
    pub fn reason(&self) -> &'static str {
        match self {
            Health::Ready { reason, .. }
            | Health::Progressing { reason, .. }
            | Health::Stalled { reason, .. } => reason,
        }
    }
    pub fn message(&self) -> &str {
        match self {
            Health::Ready { message, .. }
            | Health::Progressing { message, .. }
            | Health::Stalled { message, .. } => message,
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
    let (ready, reconciling, stalled) = match health {
        Health::Ready { .. } => (true, false, false),
        Health::Progressing { .. } => (false, true, false),
        Health::Stalled { .. } => (false, false, true),
    };
    let reason = health.reason();
    let message = health.message();
    set(conditions, READY, ready, reason, message, generation, now);
    set(
        conditions,
        RECONCILING,
        reconciling,
        if reconciling { reason } else { "Idle" },
        if reconciling { message } else { "" },
        generation,
        now,
    );
    set(
        conditions,
        STALLED,
        stalled,
        if stalled { reason } else { "Healthy" },
        if stalled { message } else { "" },
        generation,
        now,
    );
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
        assert_eq!(
            find(&c, READY).map(|r| &r.last_transition_time),
            Some(&t(30))
        );
        assert_eq!(find(&c, STALLED).map(|r| r.status.as_str()), Some("True"));
        assert_eq!(
            find(&c, RECONCILING).map(|r| &r.last_transition_time),
            Some(&t(10))
        );
        assert_eq!(c.len(), 3);
    }
}
