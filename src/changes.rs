//! Which of a kind's watch events reach its reconciler: an object's first sight, then only
//! changes of what a predicate hashes (spec generation, annotations, finalizers), never our own
//! status writes. kube's `predicate_filter` does the same but keeps every object it saw for an
//! hour, deleted ones too (about 200 bytes each: 20,000 deletions were 4 MiB that only time
//! gave back). Here an object is remembered while it exists: forgotten when it is deleted, and
//! dropped at a re-list that no longer has it.

use std::collections::{HashMap, HashSet};

use futures::{Stream, StreamExt, future};
use kube::Resource;
use kube::runtime::{Predicate, watcher};

/// The objects of `events` worth a reconcile, in order (errors pass through).
pub fn only_changes<K, P>(
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
    predicate: P,
) -> impl Stream<Item = Result<K, watcher::Error>>
where
    K: Resource,
    P: Predicate<K>,
{
    let mut seen = Seen::default();
    events.filter_map(move |event| {
        future::ready(match event {
            Ok(event) => seen.admit(event, &predicate).map(Ok),
            Err(e) => Some(Err(e)),
        })
    })
}

/// The predicate's hash of each live object, by uid.
#[derive(Default)]
struct Seen {
    hashes: HashMap<String, u64>,
    /// The uids a re-list under way has listed so far.
    listed: Option<HashSet<String>>,
}

impl Seen {
    /// The object of `event` when a reconcile should hear of it.
    fn admit<K: Resource, P: Predicate<K>>(
        &mut self,
        event: watcher::Event<K>,
        predicate: &P,
    ) -> Option<K> {
        match event {
            watcher::Event::Init => {
                self.listed = Some(HashSet::new());
                None
            }
            watcher::Event::InitApply(obj) => {
                if let (Some(listed), Some(uid)) = (self.listed.as_mut(), obj.meta().uid.as_ref()) {
                    listed.insert(uid.clone());
                }
                self.changed(obj, predicate)
            }
            watcher::Event::InitDone => {
                // Objects deleted while the watch was down send no Delete.
                if let Some(listed) = self.listed.take() {
                    self.hashes.retain(|uid, _| listed.contains(uid));
                }
                None
            }
            watcher::Event::Apply(obj) => self.changed(obj, predicate),
            watcher::Event::Delete(obj) => {
                if let Some(uid) = obj.meta().uid.as_ref() {
                    self.hashes.remove(uid);
                }
                None
            }
        }
    }

    fn changed<K: Resource, P: Predicate<K>>(&mut self, obj: K, predicate: &P) -> Option<K> {
        // Without a uid or a hash there is nothing to compare: let it through.
        let (Some(uid), Some(hash)) = (obj.meta().uid.as_ref(), predicate.hash_property(&obj))
        else {
            return Some(obj);
        };
        // Looked up first: every event passes here, and most find their object known.
        match self.hashes.get_mut(uid) {
            Some(before) if *before == hash => None,
            Some(before) => {
                *before = hash;
                Some(obj)
            }
            None => {
                self.hashes.insert(uid.clone(), hash);
                Some(obj)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::predicates;

    fn object(uid: &str, generation: i64) -> ConfigMap {
        let mut obj = ConfigMap::default();
        obj.metadata.name = Some(format!("name-{uid}"));
        obj.metadata.uid = Some(uid.to_string());
        obj.metadata.generation = Some(generation);
        obj
    }

    /// Feed `events` through; the (uid, generation) of what came out, and how many objects
    /// are remembered after.
    fn run(events: Vec<watcher::Event<ConfigMap>>) -> (Vec<(String, i64)>, usize) {
        let mut seen = Seen::default();
        let admitted = events
            .into_iter()
            .filter_map(|e| seen.admit(e, &predicates::generation))
            .map(|o| {
                (
                    o.metadata.uid.unwrap_or_default(),
                    o.metadata.generation.unwrap_or_default(),
                )
            })
            .collect();
        (admitted, seen.hashes.len())
    }

    /// Events in, and what should come out of them.
    struct Case {
        why: &'static str,
        events: Vec<watcher::Event<ConfigMap>>,
        admitted: &'static [(&'static str, i64)],
        remembered: usize,
    }

    fn out(list: &[(&str, i64)]) -> Vec<(String, i64)> {
        list.iter().map(|(u, g)| (u.to_string(), *g)).collect()
    }

    #[test]
    fn which_events_reach_the_reconciler() {
        use watcher::Event::{Apply, Delete, Init, InitApply, InitDone};
        let cases = [
            Case {
                why: "a new object, then our own status write (same generation)",
                events: vec![Apply(object("a", 1)), Apply(object("a", 1))],
                admitted: &[("a", 1)],
                remembered: 1,
            },
            Case {
                why: "a spec change",
                events: vec![Apply(object("a", 1)), Apply(object("a", 2))],
                admitted: &[("a", 1), ("a", 2)],
                remembered: 1,
            },
            Case {
                why: "a deleted object is forgotten",
                events: vec![Apply(object("a", 1)), Delete(object("a", 1))],
                admitted: &[("a", 1)],
                remembered: 0,
            },
            Case {
                why: "a re-list passes on only what changed meanwhile",
                events: vec![
                    Apply(object("a", 1)),
                    Apply(object("b", 1)),
                    Init,
                    InitApply(object("a", 1)),
                    InitApply(object("b", 2)),
                    InitDone,
                ],
                admitted: &[("a", 1), ("b", 1), ("b", 2)],
                remembered: 2,
            },
            Case {
                why: "a re-list drops objects deleted while the watch was down",
                events: vec![
                    Apply(object("a", 1)),
                    Apply(object("b", 1)),
                    Init,
                    InitApply(object("a", 1)),
                    InitDone,
                ],
                admitted: &[("a", 1), ("b", 1)],
                remembered: 1,
            },
            Case {
                why: "an object recreated under its name is new (another uid)",
                events: vec![
                    Apply(object("a", 1)),
                    Delete(object("a", 1)),
                    Apply(object("a2", 1)),
                ],
                admitted: &[("a", 1), ("a2", 1)],
                remembered: 1,
            },
        ];
        for case in cases {
            assert_eq!(
                run(case.events),
                (out(case.admitted), case.remembered),
                "{}",
                case.why
            );
        }
    }

    #[test]
    fn an_object_without_a_uid_or_hash_always_passes() {
        let mut no_uid = object("a", 1);
        no_uid.metadata.uid = None;
        let mut no_generation = object("b", 1);
        no_generation.metadata.generation = None;
        let (admitted, remembered) = run(vec![
            watcher::Event::Apply(no_uid.clone()),
            watcher::Event::Apply(no_uid),
            watcher::Event::Apply(no_generation.clone()),
            watcher::Event::Apply(no_generation),
        ]);
        assert_eq!(admitted.len(), 4);
        assert_eq!(remembered, 0);
    }

    #[tokio::test]
    async fn the_stream_passes_errors_and_changed_objects_in_order() {
        let events = futures::stream::iter(vec![
            Ok(watcher::Event::Apply(object("a", 1))),
            Err(watcher::Error::NoResourceVersion),
            Ok(watcher::Event::Apply(object("a", 1))),
            Ok(watcher::Event::Apply(object("a", 2))),
        ]);
        let out: Vec<_> = only_changes(events, predicates::generation).collect().await;
        assert_eq!(out.len(), 3);
        assert!(out[1].is_err());
        assert_eq!(
            out[2].as_ref().ok().and_then(|o| o.metadata.generation),
            Some(2)
        );
    }
}
