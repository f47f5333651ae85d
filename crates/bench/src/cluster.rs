//! Kubernetes helpers every phase shares: Secrets the benchmark writes, namespace cleanup, and the
//! watch that notes when each resource is first seen Ready.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::Value;

pub(crate) async fn put_secret(client: &Client, ns: &str, name: &str, data: &[(&str, &str)]) {
    let secret = credsync_testkit::objects::string_secret(name, data);
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::apply("credsync-bench").force(),
            &Patch::Apply(&secret),
        )
        .await
        .expect("create a Secret");
}

/// Delete every object of these kinds in `ns` (no namespace controller runs, so namespaces
/// themselves are never deleted; every phase uses its own).
pub(crate) async fn clean_namespace(client: &Client, ns: &str, resources: &[ApiResource]) {
    for ar in resources {
        let api = Api::<DynamicObject>::namespaced_with(client.clone(), ns, ar);
        if let Err(e) = api
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await
        {
            eprintln!("bench: cleaning {} in {ns}: {e}", ar.plural);
        }
    }
}

pub(crate) fn is_ready(obj: &DynamicObject) -> bool {
    obj.data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|conditions| {
            conditions.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// First time each object of a namespace was seen Ready, by name.
#[derive(Default)]
pub(crate) struct ReadyLog {
    pub(crate) at: Mutex<HashMap<String, Instant>>,
    pub(crate) count: AtomicUsize,
}

impl ReadyLog {
    pub(crate) fn saw(&self, obj: &DynamicObject) {
        if !is_ready(obj) {
            return;
        }
        let mut at = self.at.lock().unwrap_or_else(|p| p.into_inner());
        if let std::collections::hash_map::Entry::Vacant(entry) = at.entry(obj.name_any()) {
            entry.insert(Instant::now());
            self.count.store(at.len(), Ordering::Release);
        }
    }
}

/// Watch `ar` in `ns` into `log`; returns once the initial list is done.
pub(crate) async fn watch_ready(
    client: &Client,
    ns: &str,
    ar: &ApiResource,
    log: Arc<ReadyLog>,
) -> tokio::task::JoinHandle<()> {
    let api = Api::<DynamicObject>::namespaced_with(client.clone(), ns, ar);
    let (init_tx, init_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut init_tx = Some(init_tx);
        let events = watcher(api, watcher::Config::default());
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => log.saw(&o),
                Ok(watcher::Event::InitDone) => {
                    if let Some(tx) = init_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("bench: watch: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    let _ = tokio::time::timeout(Duration::from_secs(30), init_rx).await;
    task
}
