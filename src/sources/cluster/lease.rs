//! The one replica that writes status holds a `coordination.k8s.io/v1` Lease
//! (kube-lease-manager: claims and renews it with server-side apply, and takes it over when its
//! holder stops renewing). Every replica serves decisions either way.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;

/// Seconds a holder's claim lasts after its last renewal: a stopped holder is replaced within
/// this time.
pub const DURATION_SECONDS: u64 = 15;
/// Seconds before expiry at which the holder renews; also the clock skew tolerated.
pub const GRACE_SECONDS: u64 = 5;

/// Where the Lease is and who we are in it.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
}

/// Takes part in the election until the process ends. The receiver says whether this replica
/// holds the Lease now; it starts `false`, and stays so while the Lease cannot be reached.
pub fn elect(client: Client, config: LeaseConfig) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut retry = Duration::from_secs(1);
        loop {
            let built = LeaseManagerBuilder::new(client.clone(), &config.name)
                .with_namespace(&config.namespace)
                .with_identity(&config.identity)
                .with_duration(DURATION_SECONDS)
                .with_grace(GRACE_SECONDS)
                .with_field_manager("turnstile")
                .build()
                .await;
            let manager = match built {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(lease = %config.name, "cannot set up the status Lease: {e}; retrying");
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(Duration::from_secs(30));
                    continue;
                }
            };
            let (mut holder, task) = manager.watch().await;
            loop {
                let held = *holder.borrow_and_update();
                if tx.send_replace(held) != held {
                    tracing::info!(identity = %config.identity, "{} the status Lease", if held { "holding" } else { "lost" });
                }
                tokio::select! {
                    changed = holder.changed() => if changed.is_err() { break },
                    _ = tx.closed() => return,
                }
            }
            // The manager's task ended (its errors are logged by it): start over.
            tx.send_replace(false);
            let _ = task.await;
            tokio::time::sleep(retry).await;
        }
    });
    rx
}
