//! One vendor record, one owning resource. Two resources naming the same record on the same
//! endpoint (the same HelloID user and application, the same Oracle userId, ...) would
//! overwrite each other for ever, and one team could take over or delete another team's
//! record through a shared connection. Every resource therefore claims its record before any
//! vendor call: the first claimant holds it, the others are `RecordClaimed` and call nothing,
//! and when the holder goes the next claimant takes over.
//!
//! The table lives in memory. After a start it is rebuilt from the caches of every kind before
//! the first vendor call ([`ClaimTable::rebuild`] opens the gate [`ClaimTable::ready`] waits
//! for), ordering claimants so that the resource that held a record before the restart holds it
//! again: those whose status shows they applied it, then by age.

use crate::sync::LockOrRecover;
use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::{mpsc, watch};

/// The record a resource claims: its endpoint (vendor and normalised URL: two connections to
/// one URL are one endpoint) and the record's identity within it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordKey {
    pub endpoint: String,
    pub record: String,
}

impl RecordKey {
    /// `url` normalised (scheme and host lower case, default port and trailing `/` dropped),
    /// so spelling a URL differently does not make another endpoint.
    pub fn new(vendor: crate::api::Vendor, url: &str, record: String) -> RecordKey {
        let url = url::Url::parse(url.trim())
            .map(|u| u.as_str().trim_end_matches('/').to_string())
            .unwrap_or_else(|_| url.trim().trim_end_matches('/').to_ascii_lowercase());
        RecordKey {
            endpoint: format!("{vendor}|{url}"),
            record,
        }
    }
}

/// One resource claiming a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimant {
    pub uid: String,
    /// `Kind namespace/name`, as shown to the others.
    pub name: String,
    /// Where the claimant's kind is re-queued when it takes over.
    pub kind: String,
    pub namespace: String,
    pub object: String,
}

/// Rebuild order of a claimant: those that held the record first, then the oldest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seniority {
    /// False sorts first: the status shows the resource applied its record.
    pub not_applied: bool,
    /// RFC 3339 creation time (sorts by time).
    pub created: String,
    pub uid: String,
}

#[derive(Default)]
struct Table {
    /// Claimants of each record, the holder first.
    by_record: HashMap<RecordKey, Vec<Claimant>>,
    /// The record each resource claims.
    by_uid: HashMap<String, RecordKey>,
}

/// Who holds which record, across every kind and namespace.
pub struct ClaimTable {
    table: Mutex<Table>,
    ready: watch::Sender<bool>,
    /// Per kind: a queue that makes a resource reconcile again (it now holds its record).
    takeover: Mutex<HashMap<String, mpsc::UnboundedSender<(String, String)>>>,
}

impl Default for ClaimTable {
    fn default() -> Self {
        ClaimTable {
            table: Mutex::default(),
            ready: watch::channel(false).0,
            takeover: Mutex::default(),
        }
    }
}

/// The outcome of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The resource holds its record.
    Held,
    /// Another resource holds it (`Kind namespace/name`).
    HeldBy(String),
}

impl ClaimTable {
    /// Where resources of `kind` that take over a record are sent to reconcile.
    pub fn on_takeover(&self, kind: &str, queue: mpsc::UnboundedSender<(String, String)>) {
        self.lock_takeover().insert(kind.to_string(), queue);
    }

    /// Wait until the table has been rebuilt after the start.
    pub async fn ready(&self) {
        let mut ready = self.ready.subscribe();
        // The sender lives as long as self: the wait ends when the table is ready.
        let _ = ready.wait_for(|r| *r).await;
    }

    /// Fill the table from every resource in the caches and open the gate. `claims` in any
    /// order; each record's claimants are ordered by [`Seniority`].
    pub fn rebuild(&self, claims: Vec<(RecordKey, Claimant, Seniority)>) {
        let mut table = self.lock();
        let mut sorted = claims;
        sorted.sort_by(|a, b| a.2.cmp(&b.2));
        for (key, claimant, _) in sorted {
            Self::insert(&mut table, key, claimant);
        }
        drop(table);
        self.ready.send_replace(true);
    }

    /// `claimant` claims `key` (dropping any other record it claimed before).
    pub fn claim(&self, key: RecordKey, claimant: Claimant) -> Claim {
        let mut released = None;
        let claim = {
            let mut table = self.lock();
            if table.by_uid.get(&claimant.uid) != Some(&key) {
                released = Self::remove(&mut table, &claimant.uid);
                Self::insert(&mut table, key.clone(), claimant.clone());
            }
            match table.by_record.get(&key).and_then(|c| c.first()) {
                Some(holder) if holder.uid != claimant.uid => Claim::HeldBy(holder.name.clone()),
                _ => Claim::Held,
            }
        };
        self.hand_over(released);
        claim
    }

    /// Whether `uid` holds the record it claims (true when it claims none).
    pub fn holds(&self, uid: &str) -> bool {
        let table = self.lock();
        match table.by_uid.get(uid) {
            None => true,
            Some(key) => table
                .by_record
                .get(key)
                .and_then(|c| c.first())
                .is_none_or(|h| h.uid == uid),
        }
    }

    /// The resource is gone (or claims nothing any more): the next claimant takes over.
    pub fn release(&self, uid: &str) {
        let released = Self::remove(&mut self.lock(), uid);
        self.hand_over(released);
    }

    /// Records claimed (for tests and memory checks).
    pub fn len(&self) -> usize {
        self.lock().by_uid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(table: &mut Table, key: RecordKey, claimant: Claimant) {
        if table.by_uid.contains_key(&claimant.uid) {
            return;
        }
        table.by_uid.insert(claimant.uid.clone(), key.clone());
        table.by_record.entry(key).or_default().push(claimant);
    }

    /// Drop `uid`'s claim; the new holder, when the holder went.
    fn remove(table: &mut Table, uid: &str) -> Option<Claimant> {
        let key = table.by_uid.remove(uid)?;
        let claimants = table.by_record.get_mut(&key)?;
        let was_holder = claimants.first().is_some_and(|c| c.uid == uid);
        claimants.retain(|c| c.uid != uid);
        let next = claimants.first().cloned();
        if claimants.is_empty() {
            table.by_record.remove(&key);
        }
        next.filter(|_| was_holder)
    }

    fn hand_over(&self, next: Option<Claimant>) {
        if let Some(next) = next
            && let Some(queue) = self.lock_takeover().get(&next.kind)
        {
            let _ = queue.send((next.namespace, next.object));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // Every change completes under the lock in a few map operations.
        self.table.lock_or_recover()
    }

    fn lock_takeover(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<(String, String)>>> {
        self.takeover.lock_or_recover()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Vendor;

    fn claimant(uid: &str) -> Claimant {
        Claimant {
            uid: uid.into(),
            name: format!("SsoAppCredential ns-{uid}/{uid}"),
            kind: "SsoAppCredential".into(),
            namespace: format!("ns-{uid}"),
            object: uid.into(),
        }
    }

    fn key(url: &str, record: &str) -> RecordKey {
        RecordKey::new(Vendor::HelloId, url, record.into())
    }

    #[test]
    fn endpoints_are_one_whatever_the_spelling() {
        assert_eq!(
            key("https://Acme.HelloID.com/", "r"),
            key("https://acme.helloid.com:443", "r")
        );
        assert_ne!(key("https://a.example", "r"), key("https://b.example", "r"));
        assert_ne!(
            RecordKey::new(Vendor::ApexErp, "https://a.example", "r".into()),
            key("https://a.example", "r")
        );
    }

    #[test]
    fn first_holds_others_wait_next_takes_over() {
        let table = ClaimTable::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        table.on_takeover("SsoAppCredential", tx);
        let k = key("https://a.example", "user/app/Default");
        assert_eq!(table.claim(k.clone(), claimant("a")), Claim::Held);
        assert_eq!(
            table.claim(k.clone(), claimant("b")),
            Claim::HeldBy("SsoAppCredential ns-a/a".into())
        );
        assert_eq!(table.claim(k.clone(), claimant("a")), Claim::Held, "again");
        assert!(table.holds("a") && !table.holds("b"));
        table.release("b");
        assert!(
            rx.try_recv().is_err(),
            "a claimant that did not hold hands nothing over"
        );
        assert_eq!(
            table.claim(k.clone(), claimant("b")),
            Claim::HeldBy("SsoAppCredential ns-a/a".into())
        );
        table.release("a");
        assert_eq!(rx.try_recv().ok(), Some(("ns-b".into(), "b".into())));
        assert_eq!(table.claim(k.clone(), claimant("b")), Claim::Held);
        // Moving to another record releases the first.
        assert_eq!(
            table.claim(key("https://a.example", "other"), claimant("b")),
            Claim::Held
        );
        assert_eq!(table.claim(k, claimant("c")), Claim::Held);
        table.release("b");
        table.release("c");
        assert!(table.is_empty());
    }

    #[test]
    fn a_rebuild_gives_the_record_to_who_applied_it_then_the_oldest() {
        let table = ClaimTable::default();
        let k = key("https://a.example", "r");
        let seniority = |applied: bool, created: &str, uid: &str| Seniority {
            not_applied: !applied,
            created: created.into(),
            uid: uid.into(),
        };
        table.rebuild(vec![
            (
                k.clone(),
                claimant("old"),
                seniority(false, "2026-01-01T00:00:00Z", "old"),
            ),
            (
                k.clone(),
                claimant("holder"),
                seniority(true, "2026-02-01T00:00:00Z", "holder"),
            ),
            (
                k.clone(),
                claimant("new"),
                seniority(false, "2026-03-01T00:00:00Z", "new"),
            ),
        ]);
        assert!(table.holds("holder") && !table.holds("old") && !table.holds("new"));
        table.release("holder");
        assert!(table.holds("old"));
    }
}
