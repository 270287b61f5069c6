//! Cluster mode against a real kube-apiserver (the test harness's): how soon a change is
//! decided on, and what the operator costs at the design's scale. `cargo bench --bench cluster`
//! prints the figures for the README; without `--bench` (as `cargo test --all-targets` runs it)
//! it does the same on a small scale.
//!
//! 1. Propagation: a permission set is patched back and forth, and after each API call returns,
//!    `/v1/check` is asked until it shows the change (200 changes).
//! 2. Scale: the generated workload (10,000 bindings, 1,000 sets with about 100,000 rules) is
//!    created in the cluster; `turnstile run` is started and timed to its first ready snapshot,
//!    and its resident memory is compared with `turnstile serve` on the same objects as files.

#[path = "../tests/common/cluster.rs"]
mod cluster;
mod workload;

use std::time::{Duration, Instant};

use cluster::{Cluster, Turnstile};
use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use turnstile::engine::{Definitions, RuleDef, SubjectKind};

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let cluster = Cluster::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime.block_on(client(&cluster));
    propagation(&cluster, &runtime, &client, if full { 200 } else { 10 });
    cluster.kubectl(&["delete", "ou,pset,roles.turnstile.dev,ub,apicat", "--all", "--wait=true"]);
    scale(&cluster, &runtime, &client, if full { &workload::FULL } else { &workload::SMOKE });
}

async fn client(cluster: &Cluster) -> kube::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let kubeconfig = kube::config::Kubeconfig::read_from(&cluster.kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    kube::Client::try_from(config).unwrap()
}

fn api(client: &kube::Client, kind: &str) -> kube::Api<DynamicObject> {
    let resource = ApiResource {
        group: "turnstile.dev".into(),
        version: "v1alpha1".into(),
        api_version: "turnstile.dev/v1alpha1".into(),
        kind: kind.into(),
        plural: match kind {
            "OrganizationalUnit" => "organizationalunits",
            "PermissionSet" => "permissionsets",
            "Role" => "roles",
            "UserBinding" => "userbindings",
            _ => "apicatalogs",
        }
        .into(),
    };
    kube::Api::all_with(client.clone(), &resource)
}

fn propagation(cluster: &Cluster, runtime: &tokio::runtime::Runtime, client: &kube::Client, changes: usize) {
    cluster.apply_yaml(
        r#"
apiVersion: turnstile.dev/v1alpha1
kind: PermissionSet
metadata: {name: toggled}
spec:
  allow: [{methods: GET}]
---
apiVersion: turnstile.dev/v1alpha1
kind: UserBinding
metadata: {name: toggled}
spec:
  subjects: [{kind: User, name: bench}]
  organizationalUnits: [global]
  permissionSets: [toggled]
"#,
    );
    let t = Turnstile::start(cluster, "propagation", &[]);
    t.wait_for(Duration::from_secs(30), "readiness", || t.is_ready());
    let request = json!({"subject": {"user": "bench"}, "method": "GET", "path": "/x"}).to_string();
    let allowed = || {
        let (_, body) = t.request("POST", "/v1/check", &request);
        serde_json::from_str::<Value>(&body).ok().and_then(|v| v["allowed"].as_bool())
    };
    t.wait_for(Duration::from_secs(10), "the first decision", || allowed() == Some(true));
    let sets = api(client, "PermissionSet");
    let mut took = Vec::with_capacity(changes);
    for i in 0..changes {
        let allow_get = i % 2 == 1;
        let method = if allow_get { "GET" } else { "POST" };
        let patch = json!({"spec": {"allow": [{"methods": method}]}});
        runtime.block_on(sets.patch("toggled", &PatchParams::default(), &Patch::Merge(&patch))).unwrap();
        let start = Instant::now();
        while allowed() != Some(allow_get) {
            assert!(start.elapsed() < Duration::from_secs(30), "change {i} not seen in 30 s");
        }
        took.push(start.elapsed());
    }
    took.sort();
    let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
    println!(
        "propagation over {changes} changes (API call returned → /v1/check shows it): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(*took.last().unwrap())
    );
}

fn scale(cluster: &Cluster, runtime: &tokio::runtime::Runtime, client: &kube::Client, size: &workload::Size) {
    let defs = workload::definitions(size, &mut workload::Rng::new(7));
    let objects = manifests(&defs);
    let rules: usize = defs.permission_sets.iter().map(|s| s.allow.len() + s.deny.len()).sum();

    // The same objects as files, for file mode.
    let folder = cluster.dir.path().join("workload");
    std::fs::create_dir_all(&folder).unwrap();
    let yaml: Vec<String> = objects.iter().map(|o| o.to_string()).collect();
    std::fs::write(folder.join("all.yaml"), yaml.join("\n---\n")).unwrap();

    let start = Instant::now();
    runtime.block_on(async {
        let created = futures::stream::iter(objects.iter().map(|o| {
            let api = api(client, o["kind"].as_str().unwrap());
            async move {
                let o: DynamicObject = serde_json::from_value(o.clone()).unwrap();
                api.create(&PostParams::default(), &o).await
            }
        }))
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
        for c in created {
            c.unwrap();
        }
    });
    println!(
        "created {} objects ({} bindings, {} sets with {rules} rules) in {:.1} s",
        objects.len(),
        defs.user_bindings.len(),
        defs.permission_sets.len(),
        start.elapsed().as_secs_f64()
    );

    let measure = |name: &str, t: Turnstile| {
        t.wait_for(Duration::from_secs(300), "readiness", || t.is_ready());
        let ready = t.started.elapsed();
        // Let the first status pass and allocator settle before reading memory.
        std::thread::sleep(Duration::from_secs(3));
        let rss = t.rss();
        println!(
            "{name}: first ready snapshot {:.2} s after start, resident memory {:.1} MiB",
            ready.as_secs_f64(),
            mib(rss)
        );
        rss
    };
    let file = measure(
        "turnstile serve (files)",
        Turnstile::spawn(&["serve", "--manifests", folder.to_str().unwrap()], None, cluster.dir.path(), "files"),
    );
    let run = measure("turnstile run (cluster)", Turnstile::start(cluster, "scale", &[]));
    println!("cluster mode uses {:.1} MiB more than file mode", mib(run.saturating_sub(file)));
}

/// The generated definitions as manifests (JSON, which is YAML too).
fn manifests(defs: &Definitions) -> Vec<Value> {
    let object = |kind: &str, name: &str, spec: Value| json!({"apiVersion": "turnstile.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec});
    let rule = |r: &RuleDef| json!({"resourceType": r.resource_type, "apiName": r.api_name, "methods": r.methods, "paths": r.paths});
    let strip_nulls = |mut v: Value| {
        if let Value::Object(m) = &mut v {
            m.retain(|_, v| !v.is_null());
        }
        v
    };
    let mut out = Vec::new();
    for ou in &defs.organizational_units {
        out.push(object(
            "OrganizationalUnit",
            &ou.meta.name,
            strip_nulls(json!({"parent": ou.parent, "resources": ou.resources})),
        ));
    }
    for s in &defs.permission_sets {
        let rules = |rs: &[RuleDef]| rs.iter().map(|r| strip_nulls(rule(r))).collect::<Vec<_>>();
        let mut spec = json!({"allow": rules(&s.allow), "deny": rules(&s.deny), "systemWide": s.system_wide});
        if let Some(scope) = &s.scope {
            spec["scope"] = json!({"organizationalUnits": scope});
        }
        out.push(object("PermissionSet", &s.meta.name, spec));
    }
    for r in &defs.roles {
        out.push(object("Role", &r.meta.name, json!({"permissionSets": r.permission_sets})));
    }
    for b in &defs.user_bindings {
        let subjects: Vec<Value> = b
            .subjects
            .iter()
            .map(|s| {
                let kind = match s.kind {
                    SubjectKind::User => "User",
                    SubjectKind::Group => "Group",
                    SubjectKind::ServiceAccount => "ServiceAccount",
                };
                json!({"kind": kind, "name": s.name})
            })
            .collect();
        let spec = json!({"subjects": subjects, "role": b.role, "organizationalUnits": b.organizational_units,
            "permissionSets": b.permission_sets});
        out.push(object("UserBinding", &b.meta.name, strip_nulls(spec)));
    }
    for c in &defs.api_catalogs {
        let ops: Vec<Value> = c
            .operations
            .iter()
            .map(|o| {
                strip_nulls(json!({"id": o.id, "method": o.method, "path": o.path, "resourceType": o.resource_type,
                    "accessPath": o.access_path, "resource": o.resource}))
            })
            .collect();
        let spec = json!({"hosts": c.hosts, "pathPrefix": c.path_prefix, "operations": ops});
        out.push(object("ApiCatalog", &c.meta.name, strip_nulls(spec)));
    }
    out
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
