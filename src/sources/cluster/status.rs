//! The status writer: after each build, the Lease holder sets every object's `status` to what
//! the build's report says (DESIGN §2), by server-side apply on the status subresource with
//! field manager `turnstile`, and only where the object does not carry that status already.
//! A transition to not Ready also records a Warning Event on the object.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{Built, Shared};
use crate::engine::Kind;
use crate::sources::convert::AnyResource;
use crate::sources::crd::{ApiCatalog, OrganizationalUnit, PermissionSet, Role, UserBinding};

/// Field manager of the status Turnstile writes.
pub const FIELD_MANAGER: &str = "turnstile";

/// Status writes in flight at once: the first pass over a large cluster writes every object.
const CONCURRENT_WRITES: usize = 8;
/// Wait before writing again after a write failed.
const RETRY: Duration = Duration::from_secs(5);

/// One status to write.
struct Update {
    kind: Kind,
    name: String,
    generation: Option<i64>,
    status: Value,
    /// Set when the object turns not Ready: the Event to record.
    event: Option<(ObjectReference, String, String)>,
}

/// Writes status after every build while `leader` is true, until the process ends.
pub async fn write(
    client: Client,
    shared: Arc<Shared>,
    mut builds: watch::Receiver<Option<Built>>,
    mut leader: watch::Receiver<bool>,
    identity: String,
) {
    let recorder = Recorder::new(client.clone(), Reporter { controller: "turnstile".into(), instance: Some(identity) });
    // What this replica wrote last, by object: the watch may not have brought the new status
    // back before the next build, and the same status must not be written twice.
    let mut written: HashMap<(Kind, String), (Option<i64>, Value)> = HashMap::new();
    let mut failed = false;
    loop {
        let retry = async {
            match failed {
                true => tokio::time::sleep(RETRY).await,
                false => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = builds.changed() => if changed.is_err() { return },
            changed = leader.changed() => if changed.is_err() { return },
            _ = retry => {}
        }
        failed = false;
        if !*leader.borrow_and_update() {
            written.clear();
            continue;
        }
        let Some(built) = builds.borrow_and_update().clone() else { continue };
        let updates: Vec<Update> = {
            let store = shared.store();
            written.retain(|(kind, name), _| store.get(*kind, name).is_some());
            let updates = store.objects().filter_map(|object| update(object, &built));
            // Compared without transition times: until the watch brings a written status
            // back, the next build computes it again with a later time, and writing that
            // would move `lastTransitionTime` a second time for one transition.
            let fresh = |u: &Update| {
                let last = written.get(&(u.kind, u.name.clone()));
                !last.is_some_and(|(g, s)| *g == u.generation && same_but_times(s, &u.status))
            };
            updates.filter(fresh).collect()
        };
        let mut results = std::pin::pin!(
            futures::stream::iter(updates)
                .map(|u| async {
                    let result = apply(&client, &recorder, &u).await;
                    (u, result)
                })
                .buffer_unordered(CONCURRENT_WRITES)
        );
        while let Some((u, result)) = results.next().await {
            match result {
                Ok(()) => {
                    written.insert((u.kind, u.name), (u.generation, u.status));
                }
                Err(e) => {
                    tracing::warn!("cannot write the status of {}/{}: {e}; retrying", u.kind, u.name);
                    failed = true;
                }
            }
            if !*leader.borrow() {
                break;
            }
        }
    }
}

/// Whether two statuses differ at most in their conditions' `lastTransitionTime`.
fn same_but_times(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(conditions) = v.get_mut("conditions").and_then(Value::as_array_mut) {
            for c in conditions.iter_mut().filter_map(Value::as_object_mut) {
                c.remove("lastTransitionTime");
            }
        }
        v
    };
    strip(a) == strip(b)
}

/// Writes one status, and records its Event if it has one.
async fn apply(client: &Client, recorder: &Recorder, u: &Update) -> kube::Result<()> {
    patch(client, u).await?;
    if let Some((reference, reason, message)) = &u.event {
        let event = Event {
            type_: EventType::Warning,
            reason: reason.clone(),
            note: Some(message.clone()),
            action: "Index".into(),
            secondary: None,
        };
        if let Err(e) = record(recorder, &event, reference.clone()).await {
            tracing::warn!("cannot record an event on {}/{}: {e}", u.kind, u.name);
        }
    }
    Ok(())
}

/// The status `object` needs after `built`, if it does not carry it already.
fn update(object: &AnyResource, built: &Built) -> Option<Update> {
    let kind = object.kind();
    // Every object the build saw has a status in its report; one that arrived since waits for
    // the next build.
    let status = built.report.get(kind, object.name())?;
    let desired = object.status_update(status, built.at)?;
    let was_ready = object.conditions().iter().find(|c| c.type_ == "Ready").is_none_or(|c| c.status != "False");
    let event = match (&status.error, was_ready) {
        (Some(p), true) => Some((reference(object), p.reason.as_str().to_owned(), p.message.clone())),
        _ => None,
    };
    Some(Update {
        kind,
        name: object.name().to_owned(),
        generation: object.metadata().generation,
        status: desired,
        event,
    })
}

/// Records `event` on a cluster-scoped object, in the namespace `default`. API servers before
/// 1.22 refuse an event whose object has no namespace (`involvedObject.namespace` must match
/// the event's); for them the reference names `default` too.
async fn record(recorder: &Recorder, event: &Event, mut reference: ObjectReference) -> kube::Result<()> {
    match recorder.publish(event, &reference).await {
        Err(kube::Error::Api(e)) if e.code == 422 => {
            reference.namespace = Some("default".into());
            recorder.publish(event, &reference).await
        }
        other => other,
    }
}

fn api_resource(kind: Kind) -> ApiResource {
    match kind {
        Kind::OrganizationalUnit => ApiResource::erase::<OrganizationalUnit>(&()),
        Kind::PermissionSet => ApiResource::erase::<PermissionSet>(&()),
        Kind::Role => ApiResource::erase::<Role>(&()),
        Kind::UserBinding => ApiResource::erase::<UserBinding>(&()),
        Kind::ApiCatalog => ApiResource::erase::<ApiCatalog>(&()),
    }
}

fn reference(object: &AnyResource) -> ObjectReference {
    let meta = object.metadata();
    ObjectReference {
        api_version: Some(OrganizationalUnit::api_version(&()).into_owned()),
        kind: Some(object.kind().as_str().to_owned()),
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..Default::default()
    }
}

async fn patch(client: &Client, u: &Update) -> kube::Result<()> {
    let resource = api_resource(u.kind);
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let body = json!({ "apiVersion": resource.api_version, "kind": resource.kind, "status": u.status });
    api.patch_status(&u.name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(body)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::same_but_times;

    #[test]
    fn statuses_are_compared_without_transition_times() {
        let at = |t: &str, status: &str| json!({"observedGeneration": 2, "conditions": [{"type": "Ready", "status": status, "lastTransitionTime": t}]});
        assert!(same_but_times(&at("2026-01-01T00:00:00Z", "False"), &at("2026-01-01T00:00:05Z", "False")));
        assert!(!same_but_times(&at("2026-01-01T00:00:00Z", "False"), &at("2026-01-01T00:00:00Z", "True")));
        let mut other = at("2026-01-01T00:00:00Z", "False");
        other["observedGeneration"] = json!(3);
        assert!(!same_but_times(&at("2026-01-01T00:00:00Z", "False"), &other));
    }
}
