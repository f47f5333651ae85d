//! Leader election on a coordination Lease, so several replicas can run with one active. The
//! active replica stops all its controllers before it releases the Lease, so two never write at
//! once; a standby takes over as soon as the Lease is released or expires.

use std::future::Future;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio_util::sync::CancellationToken;

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
}

/// Run `work` only while this replica holds the Lease. Returns what `work` returned once it
/// finished and the Lease was released (None when shutdown came before leadership), or Err when
/// the Lease was lost.
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
    let work = work(stop_work.clone());
    tokio::pin!(work);
    let result = loop {
        tokio::select! {
            done = &mut work => break Ok(Some(done)),
            changed = leading.changed() => {
                if changed.is_err() || !*leading.borrow_and_update() {
                    tracing::error!("lost the leader Lease; stopping controllers");
                    stop_work.cancel();
                    (&mut work).await;
                    break Err(LeaderError::Lost);
                }
            }
        }
    };
    // Only now, with every controller stopped, let the Lease go.
    drop(leading);
    let _ = lease_task.await;
    tracing::info!("released the leader Lease");
    result
}
