//! The API server's audit log: one process's completed requests in a window of it, told apart by
//! the impersonated user it runs as.

use std::collections::BTreeMap;
use std::path::Path;

use crate::OPERATOR_USER;
use serde_json::Value;

#[derive(Debug, Default, Clone)]
pub(crate) struct AuditCounts {
    pub(crate) total: usize,
    pub(crate) writes: usize,
    pub(crate) by_request: BTreeMap<String, usize>,
}

pub(crate) fn audit_offset(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The audit log between two byte offsets (empty when it cannot be read).
pub(crate) fn audit_text(path: &Path, from: u64, to: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut bytes = Vec::new();
    let read = std::fs::File::open(path).and_then(|mut file| {
        file.seek(SeekFrom::Start(from))?;
        file.take(to.saturating_sub(from)).read_to_end(&mut bytes)
    });
    match read {
        Ok(_) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    }
}

/// The credsync operator's completed requests between two offsets of the audit log.
pub(crate) fn audit_window(path: &Path, from: u64, to: u64) -> AuditCounts {
    audit_window_of(path, from, to, OPERATOR_USER)
}

/// The completed requests of the process impersonating `user` between two offsets.
pub(crate) fn audit_window_of(path: &Path, from: u64, to: u64, user: &str) -> AuditCounts {
    let mut counts = AuditCounts::default();
    let marker = format!("\"impersonatedUser\":{{\"username\":\"{user}\"");
    for line in audit_text(path, from, to).lines() {
        if !line.contains("\"stage\":\"ResponseComplete\"") || !line.contains(&marker) {
            continue;
        }
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let verb = event.get("verb").and_then(Value::as_str).unwrap_or("?");
        let resource = event
            .pointer("/objectRef/resource")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let sub = event
            .pointer("/objectRef/subresource")
            .and_then(Value::as_str)
            .map(|s| format!("/{s}"))
            .unwrap_or_default();
        counts.total += 1;
        if matches!(
            verb,
            "create" | "update" | "patch" | "delete" | "deletecollection"
        ) {
            counts.writes += 1;
        }
        *counts
            .by_request
            .entry(format!("{verb} {resource}{sub}"))
            .or_default() += 1;
    }
    counts
}
