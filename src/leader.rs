//! Leader election on a coordination Lease, so several replicas can run with one active. The
//! active replica stops all its controllers before it releases the Lease, so two never write at
//! once; a standby takes over as soon as the Lease is released or expires.
//!
//! A leader cut off from the API server cannot renew and is not told that it lost the Lease,
//! so it fences itself: it follows its own renewals on a watch of the Lease and keeps a
//! [`Fence`] at the last renewal it saw plus the Lease duration minus a margin. Vendor calls
//! are refused past the fence and cut off at it, and the controllers stop when it passes.

use std::future::Future;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio_util::sync::CancellationToken;

use crate::fence::Fence;

/// Which Lease to hold, and for how long.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    pub lease_name: String,
    pub namespace: String,
    /// This replica's name in the Lease (the pod name in a cluster).
    pub identity: String,
    /// Seconds a holder keeps the Lease without renewing it.
    pub lease_seconds: u64,
    /// Seconds before expiry at which the holder renews.
    pub renew_grace_seconds: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("leader election: {0}")]
    Lease(#[from] LeaseManagerError),
    #[error("lost the leader Lease; stopped all controllers")]
    Lost,
    #[error(
        "could not renew the leader Lease in time (API server unreachable?); stopped all controllers"
    )]
    Lapsed,
}

impl LeaderElection {
    /// How long before the Lease could expire this replica stops vendor calls: half the renew
    /// grace, so a renewal on time (grace before expiry) always moves the fence first, and
    /// the rest covers clock skew between nodes and the last bytes of a cut-off request.
    pub fn fence_margin(&self) -> Duration {
        Duration::from_secs(self.renew_grace_seconds.max(1)) / 2
    }

    /// Up to when a renewal at `renewed` (the Lease's renewTime, written by this replica's own
    /// clock) lets this replica act, on the monotonic clock; None when that is already past.
    fn fence_after(&self, renewed: SystemTime, lease_seconds: u64) -> Option<tokio::time::Instant> {
        let lease = Duration::from_secs(lease_seconds.min(self.lease_seconds.max(2)));
        let until = renewed
            .checked_add(lease)?
            .checked_sub(self.fence_margin())?;
        let left = until.duration_since(SystemTime::now()).ok()?;
        tokio::time::Instant::now().checked_add(left)
    }
}

/// Keep `fence` at the end of this replica's hold on the Lease, as a watch of the Lease shows
/// it: every renewal by this replica extends it; the Lease held by another, or gone, closes it.
/// While the watch is broken nothing extends it, so it closes on time by itself.
async fn follow_own_renewals(api: Api<Lease>, election: LeaderElection, fence: Fence) {
    let config =
        watcher::Config::default().fields(&format!("metadata.name={}", election.lease_name));
    let events = watcher(api, config).default_backoff().applied_objects();
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        let Ok(lease) = event else { continue };
        let spec = lease.spec.unwrap_or_default();
        let ours = spec.holder_identity.as_deref() == Some(election.identity.as_str());
        let until = match (ours, spec.renew_time, spec.lease_duration_seconds) {
            (true, Some(renewed), Some(seconds)) => election.fence_after(
                SystemTime::from(renewed.0),
                u64::try_from(seconds).unwrap_or(0),
            ),
            _ => None,
        };
        match until {
            Some(until) => fence.extend_until(until),
            None => fence.close(),
        }
    }
}

/// Run the controllers while this replica holds the Lease, with every vendor call fenced by
/// it, and this replica's identity in the vendors' User-Agent. What `credsync run
/// --leader-election` does.
pub async fn run_controllers_while_leading(
    client: Client,
    election: &LeaderElection,
    mut settings: crate::controller::Settings,
    readiness: crate::server::Readiness,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let fence = Fence::closed();
    settings.transport.fence = fence.clone();
    settings.transport.replica = Some(election.identity.clone());
    run_while_leading_fenced(client.clone(), election, fence, shutdown, |stop| {
        crate::controller::run(client, settings, readiness, stop)
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|ran| ran.unwrap_or(Ok(())).map_err(|e| e.to_string()))
}

/// Run `work` only while this replica holds the Lease. Returns what `work` returned once it
/// finished and the Lease was released (None when shutdown came before leadership), or Err when
/// the Lease was lost. Nothing fences what `work` does: see [`run_while_leading_fenced`].
pub async fn run_while_leading<F, Fut, T>(
    client: Client,
    election: &LeaderElection,
    shutdown: CancellationToken,
    work: F,
) -> Result<Option<T>, LeaderError>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = T>,
{
    run_while_leading_fenced(client, election, Fence::closed(), shutdown, work).await
}

/// [`run_while_leading`], keeping `fence` open only while this replica's last renewal of the
/// Lease vouches for it (see [`LeaderElection::fence_margin`]); `work` is stopped, and Err
/// returned, once the fence closes without a renewal.
pub async fn run_while_leading_fenced<F, Fut, T>(
    client: Client,
    election: &LeaderElection,
    fence: Fence,
    shutdown: CancellationToken,
    work: F,
) -> Result<Option<T>, LeaderError>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = T>,
{
    fence.close();
    let renewals = tokio::spawn(follow_own_renewals(
        Api::namespaced(client.clone(), &election.namespace),
        election.clone(),
        fence.clone(),
    ));
    let result = lead(client, election, &fence, shutdown, work).await;
    renewals.abort();
    fence.close();
    result
}

async fn lead<F, Fut, T>(
    client: Client,
    election: &LeaderElection,
    fence: &Fence,
    shutdown: CancellationToken,
    work: F,
) -> Result<Option<T>, LeaderError>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = T>,
{
    let manager = LeaseManagerBuilder::new(client, &election.lease_name)
        .with_namespace(&election.namespace)
        .with_identity(&election.identity)
        .with_duration(election.lease_seconds.max(2))
        .with_grace(
            election
                .renew_grace_seconds
                .clamp(1, election.lease_seconds.max(2) - 1),
        )
        .build()
        .await?;
    let (mut leading, lease_task) = manager.watch().await;
    tracing::info!(lease = %election.lease_name, identity = %election.identity, "waiting to lead");
    while !*leading.borrow_and_update() {
        tokio::select! {
            _ = shutdown.cancelled() => {
                drop(leading);
                let _ = lease_task.await;
                return Ok(None);
            }
            changed = leading.changed() => if changed.is_err() { return Err(LeaderError::Lost) },
        }
    }
    tracing::info!(identity = %election.identity, "leading: starting controllers");
    let stop_work = shutdown.child_token();
    // The Lease may be ours before the watch of it says so: wait (briefly) for the fence.
    let opened = async {
        while !fence.is_open() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let lease = Duration::from_secs(election.lease_seconds.max(2));
    if tokio::time::timeout(lease, opened).await.is_err() {
        tracing::error!("leading, but no renewal of the Lease was seen in time; giving up");
        drop(leading);
        let _ = lease_task.await;
        return Err(LeaderError::Lapsed);
    }
    let work = work(stop_work.clone());
    tokio::pin!(work);
    let result = loop {
        tokio::select! {
            done = &mut work => break Ok(Some(done)),
            changed = leading.changed() => {
                if changed.is_err() || !*leading.borrow_and_update() {
                    tracing::error!("lost the leader Lease; stopping controllers");
                    fence.close();
                    stop_work.cancel();
                    (&mut work).await;
                    break Err(LeaderError::Lost);
                }
            }
            // No renewal came in time: a standby may lead soon. Vendor calls already stopped
            // at the fence; stop the rest (status writes, events) too.
            _ = fence.closed_now() => {
                tracing::error!("could not renew the leader Lease in time; stopping controllers");
                stop_work.cancel();
                (&mut work).await;
                break Err(LeaderError::Lapsed);
            }
        }
    };
    // Only now, with every controller stopped, let the Lease go. Cut off from the API
    // server, releasing cannot succeed: do not wait for it longer than the Lease lasts.
    fence.close();
    drop(leading);
    let _ = tokio::time::timeout(lease, lease_task).await;
    tracing::info!("released the leader Lease");
    result
}
