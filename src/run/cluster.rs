//! Cluster mode (`turnstile run`, DESIGN §6): watches the five kinds, publishes their
//! snapshot, and writes their status from the replica that holds the Lease. Every replica
//! serves decisions.

use std::process::ExitCode;

use anyhow::Context;
use tokio::sync::watch;

use crate::cli::RunArgs;
use crate::sources::cluster::{self, lease};

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    super::serve(&args.server, "the cluster's Turnstile resources", |publisher| async move {
        let client = kube::Client::try_default()
            .await
            .context("cannot configure a Kubernetes client (in-cluster, or KUBECONFIG)")?;
        let namespace = args.lease_namespace.clone().unwrap_or_else(|| client.default_namespace().to_owned());
        let identity = args.identity.clone().unwrap_or_else(host_name);
        let shared = cluster::watch_all(&client, args.selector.as_deref(), &publisher);
        let (builds, built) = watch::channel(None);
        tokio::spawn(cluster::rebuild(shared.clone(), publisher, builds));
        let config = lease::LeaseConfig { name: args.lease_name.clone(), namespace, identity: identity.clone() };
        tracing::info!(lease = %config.name, namespace = %config.namespace, %identity, "status is written by the Lease holder");
        let leader = lease::elect(client.clone(), config);
        tokio::spawn(cluster::status::write(client, shared, built, leader, identity));
        Ok(Box::new(()) as super::Guard)
    })
}

/// This machine's name (a pod's name, in a cluster), else a fixed one.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("turnstile-{}", std::process::id()))
}
