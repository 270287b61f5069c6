//! The proxy and gateway manifests in `examples/integrations/`, read as a cluster would: each
//! file holds the documents its row of [`FILES`] names, and the fields that must agree with
//! Turnstile do (the port, the endpoint paths, the five identity headers, and the names that tie
//! a policy to its route, Service or mesh provider). No schema is checked here: Envoy Gateway's,
//! NGINX Gateway Fabric's and Istio's mesh config schemas ship in no crate, PyPI or npm package
//! (npm has models of the Gateway API and Istio CRDs, which cover none of these three).

use std::path::{Path, PathBuf};

use serde_json::Value;
use turnstile::sources::files;

/// The headers an allowed answer sets on the upstream request.
const IDENTITY: [&str; 5] = ["x-auth-user", "x-auth-groups", "x-auth-ou", "x-auth-role", "x-auth-operation"];
/// What a gateway must pass on for Turnstile to know who asks, and in which OU.
const REQUEST_HEADERS: [&str; 2] = ["authorization", "x-turnstile-ou"];
/// Turnstile's decision listener, as the chart's Service and every file name it.
const PORT: u64 = 8080;
const NAMESPACE: &str = "turnstile-system";
const SERVICE: &str = "turnstile";
const HOST: &str = "turnstile.turnstile-system.svc.cluster.local";
/// Turnstile refuses a larger body, so a gateway must not be told to send one.
const MAX_BODY_BYTES: u64 = 1 << 20;

const SECURITY_POLICY: (&str, &str) = ("gateway.envoyproxy.io/v1alpha1", "SecurityPolicy");
const HTTP_ROUTE: (&str, &str) = ("gateway.networking.k8s.io/v1", "HTTPRoute");
const REFERENCE_GRANT: (&str, &str) = ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant");
const CORE_SERVICE: (&str, &str) = ("v1", "Service");
const INGRESS: (&str, &str) = ("networking.k8s.io/v1", "Ingress");
/// Envoy's bootstrap configuration is not a Kubernetes object.
const NO_KIND: (&str, &str) = ("", "");

/// Every YAML file of the folder, and its documents' `(apiVersion, kind)` in order.
const FILES: &[(&str, &[(&str, &str)])] = &[
    ("admission-webhook.yaml", &[("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration")]),
    ("envoy-gateway-grpc.yaml", &[SECURITY_POLICY, HTTP_ROUTE, REFERENCE_GRANT, CORE_SERVICE]),
    ("envoy-gateway-http.yaml", &[SECURITY_POLICY, HTTP_ROUTE, REFERENCE_GRANT, CORE_SERVICE]),
    ("envoy-grpc.yaml", &[NO_KIND]),
    ("envoy.yaml", &[NO_KIND]),
    ("ingress-nginx.yaml", &[INGRESS]),
    (
        "istio.yaml",
        &[
            ("install.istio.io/v1alpha1", "IstioOperator"),
            ("security.istio.io/v1", "AuthorizationPolicy"),
            CORE_SERVICE,
        ],
    ),
    ("nginx-gateway-fabric.yaml", &[("gateway.nginx.org/v1alpha1", "SnippetsFilter"), HTTP_ROUTE]),
    ("traefik-middleware.yaml", &[("traefik.io/v1alpha1", "Middleware"), INGRESS]),
];

fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/integrations")
}

/// A file's documents, read strictly: YAML 1.2 booleans, and a key given twice is an error
/// (a cluster would keep one of the two without a word).
fn documents(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(folder().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let options = serde_saphyr::options! {
        strict_booleans: true,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
    };
    serde_saphyr::from_multiple_with_options(&text, options).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The value at a JSON pointer, which must be there.
fn at<'a>(v: &'a Value, pointer: &str) -> &'a Value {
    v.pointer(pointer).unwrap_or_else(|| panic!("no `{pointer}` in {v}"))
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    at(v, pointer).as_str().unwrap_or_else(|| panic!("`{pointer}` is not a string in {v}"))
}

/// A list of strings, lowercased (header names are compared without case).
fn names(v: &Value, pointer: &str) -> Vec<String> {
    let list = at(v, pointer).as_array().unwrap_or_else(|| panic!("`{pointer}` is not a list in {v}"));
    list.iter().map(|s| s.as_str().expect("a string").to_ascii_lowercase()).collect()
}

fn assert_all_in(wanted: &[&str], list: &[String], what: &str) {
    for w in wanted {
        assert!(list.iter().any(|l| l == w), "{what} leaves out `{w}`: {list:?}");
    }
}

/// The one document of this kind in the file.
fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let mut found = docs.iter().filter(|d| d["kind"] == kind);
    let doc = found.next().unwrap_or_else(|| panic!("no {kind}"));
    assert!(found.next().is_none(), "more than one {kind}");
    doc
}

/// Turnstile's Service, where a file has one: the chart's, plus `appProtocol: kubernetes.io/h2c`,
/// which Istio needs to call it over gRPC (HTTP/2) and which tells Envoy Gateway it speaks h2c.
fn check_service(docs: &[Value]) {
    let svc = one(docs, "Service");
    assert_eq!((text(svc, "/metadata/name"), text(svc, "/metadata/namespace")), (SERVICE, NAMESPACE));
    let ports = at(svc, "/spec/ports").as_array().unwrap();
    assert_eq!(ports.len(), 1, "{svc}");
    assert_eq!(ports[0]["port"], PORT);
    assert_eq!(ports[0]["appProtocol"], "kubernetes.io/h2c");
}

/// A reference to Turnstile's Service on its decision port, as a Gateway API `backendRef`.
fn assert_turnstile_backend(refs: &Value) {
    let refs = refs.as_array().expect("backendRefs is a list");
    assert_eq!(refs.len(), 1, "{refs:?}");
    let r = &refs[0];
    assert_eq!(
        (&r["name"], &r["namespace"], &r["port"]),
        (&Value::from(SERVICE), &Value::from(NAMESPACE), &PORT.into())
    );
    // `kind` and `group` default to a core Service.
    assert!(r.get("kind").is_none_or(|k| k == "Service") && r.get("group").is_none_or(|g| g == ""), "{r}");
}

#[test]
fn every_file_holds_the_documents_its_row_names() {
    let mut on_disk: Vec<String> = std::fs::read_dir(folder())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .collect();
    on_disk.sort();
    let listed: Vec<&str> = FILES.iter().map(|(f, _)| *f).collect();
    assert_eq!(
        on_disk, listed,
        "a file of examples/integrations is missing from FILES, or FILES names a file that is not there"
    );
    for (file, kinds) in FILES {
        let docs = documents(file);
        let found: Vec<(&str, &str)> =
            docs.iter().map(|d| (d["apiVersion"].as_str().unwrap_or(""), d["kind"].as_str().unwrap_or(""))).collect();
        assert_eq!(&found, kinds, "{file}");
    }
}

/// Serving `examples/` reads this folder too: every document must be skipped as another API
/// group's, none taken for a Turnstile resource or refused as a misspelt one.
#[test]
fn the_loader_skips_every_document() {
    let loaded = files::load(&folder()).unwrap();
    assert!(loaded.problems.is_empty(), "{:#?}", loaded.problems);
    assert!(loaded.resources.is_empty());
    let total: usize = FILES.iter().map(|(_, kinds)| kinds.len()).sum();
    assert_eq!(loaded.notes.len(), total, "{:#?}", loaded.notes);
}

/// The two Envoy Gateway policies: each targets the HTTPRoute of its file and calls Turnstile's
/// Service, which a ReferenceGrant in Turnstile's namespace lets it name.
#[test]
fn envoy_gateway_policies_call_turnstile_for_their_route() {
    for file in ["envoy-gateway-http.yaml", "envoy-gateway-grpc.yaml"] {
        let docs = documents(file);
        let (policy, route, grant) =
            (one(&docs, "SecurityPolicy"), one(&docs, "HTTPRoute"), one(&docs, "ReferenceGrant"));
        let namespace = text(policy, "/metadata/namespace");
        assert_eq!(text(route, "/metadata/namespace"), namespace, "{file}: a policy targets routes of its namespace");
        let targets = at(policy, "/spec/targetRefs").as_array().unwrap();
        assert_eq!(targets.len(), 1, "{file}");
        assert_eq!(targets[0]["group"], "gateway.networking.k8s.io", "{file}");
        assert_eq!(targets[0]["kind"], "HTTPRoute", "{file}");
        assert_eq!(targets[0]["name"], at(route, "/metadata/name").clone(), "{file}: the policy targets another route");

        let ext = at(policy, "/spec/extAuth");
        assert_eq!(ext["failOpen"], false, "{file}: a Turnstile that cannot be reached must deny");
        let body = at(ext, "/bodyToExtAuth/maxRequestBytes").as_u64().unwrap();
        assert!((1..=MAX_BODY_BYTES).contains(&body), "{file}: {body}");
        let service = match (ext.get("http"), ext.get("grpc")) {
            (Some(http), None) => {
                assert_eq!(file, "envoy-gateway-http.yaml");
                // The original path is appended: /authz/envoy/api/v1/items.
                assert_eq!(text(http, "/path"), "/authz/envoy", "{file}");
                assert!(http.get("pathOverride").is_none(), "{file}: pathOverride would drop the original path");
                assert_all_in(&IDENTITY, &names(http, "/headersToBackend"), "headersToBackend");
                // Only these, with Host, Method, Path and Content-Length, reach an HTTP check.
                assert_all_in(&REQUEST_HEADERS, &names(ext, "/headersToExtAuth"), "headersToExtAuth");
                http
            }
            (None, Some(grpc)) => {
                assert_eq!(file, "envoy-gateway-grpc.yaml");
                // Left out, every header of the request reaches a gRPC check.
                assert!(ext.get("headersToExtAuth").is_none(), "{file}");
                grpc
            }
            _ => panic!("{file}: extAuth needs exactly one of http and grpc"),
        };
        assert_turnstile_backend(at(service, "/backendRefs"));

        assert_eq!(text(grant, "/metadata/namespace"), NAMESPACE, "{file}: the grant sits beside the Service");
        let from = at(grant, "/spec/from").as_array().unwrap();
        assert!(
            from.iter().any(|f| f["group"] == "gateway.envoyproxy.io"
                && f["kind"] == "SecurityPolicy"
                && f["namespace"] == namespace),
            "{file}: {from:?}"
        );
        let to = at(grant, "/spec/to").as_array().unwrap();
        assert!(
            to.iter().any(|t| t["group"] == "" && t["kind"] == "Service" && t["name"] == SERVICE),
            "{file}: {to:?}"
        );
        check_service(&docs);
    }
}

/// The `proxy_set_header X-Original-…` lines of nginx.conf's auth location, which
/// tests/proxies.rs runs through a real nginx.
fn nginx_conf_original_headers() -> Vec<String> {
    let conf = std::fs::read_to_string(folder().join("nginx.conf")).unwrap();
    let lines: Vec<String> = conf
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("proxy_set_header X-Original-"))
        .map(str::to_owned)
        .collect();
    assert!(!lines.is_empty());
    lines
}

/// NGINX Gateway Fabric: the SnippetsFilter is nginx.conf's `auth_request` set-up, pointed at
/// Turnstile's Service, and the HTTPRoute's rule applies it.
#[test]
fn nginx_gateway_fabric_snippets_are_the_auth_request_lines() {
    let docs = documents("nginx-gateway-fabric.yaml");
    let (filter, route) = (one(&docs, "SnippetsFilter"), one(&docs, "HTTPRoute"));
    let snippets = at(filter, "/spec/snippets").as_array().unwrap();
    let snippet = |context: &str| -> Vec<String> {
        let found: Vec<&Value> = snippets.iter().filter(|s| s["context"] == context).collect();
        assert_eq!(found.len(), 1, "one `{context}` snippet");
        text(found[0], "/value").lines().map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()).collect()
    };
    let server = snippet("http.server");
    let location = snippet("http.server.location");
    assert_eq!(snippets.len(), 2);

    // The auth location: internal, without the body, at Turnstile's /authz/nginx.
    let opening = server[0].strip_prefix("location = ").and_then(|l| l.strip_suffix(" {")).expect("an exact location");
    for line in ["internal;", &format!("proxy_pass http://{HOST}:{PORT}/authz/nginx;"), "proxy_pass_request_body off;"]
    {
        assert!(server.iter().any(|l| l == line), "the auth location leaves out `{line}`: {server:#?}");
    }
    // Every X-Original header line of nginx.conf but the commented alternative, as it is there.
    let original: Vec<&String> = server.iter().filter(|l| l.starts_with("proxy_set_header X-Original-")).collect();
    let conf = nginx_conf_original_headers();
    assert_eq!(
        original,
        conf.iter().collect::<Vec<_>>(),
        "the auth location and nginx.conf say the original request differently"
    );
    assert!(original.iter().any(|l| l.contains("$host$request_uri")), "the host nginx routed on");

    assert_eq!(location[0], format!("auth_request {opening};"));
    // Each identity header: captured from Turnstile's answer into a variable, and that variable
    // set on the upstream request, which replaces the client's header of the same name.
    for h in IDENTITY {
        let suffix = h.strip_prefix("x-auth-").unwrap();
        let captured = location
            .iter()
            .find_map(|l| {
                let (var, from) = l.strip_prefix("auth_request_set ")?.strip_suffix(';')?.split_once(' ')?;
                (from == format!("$upstream_http_x_auth_{suffix}")).then_some(var)
            })
            .unwrap_or_else(|| panic!("`{h}` is not captured: {location:#?}"));
        let set = location.iter().any(|l| {
            l.strip_prefix("proxy_set_header ")
                .and_then(|l| l.strip_suffix(';'))
                .and_then(|l| l.split_once(' '))
                .is_some_and(|(name, value)| name.eq_ignore_ascii_case(h) && value == captured)
        });
        assert!(set, "`{h}` is not set on the upstream request from {captured}: {location:#?}");
    }

    assert_eq!(text(route, "/metadata/namespace"), text(filter, "/metadata/namespace"));
    let rules = at(route, "/spec/rules").as_array().unwrap();
    assert!(!rules.is_empty());
    for rule in rules {
        let filters = at(rule, "/filters").as_array().unwrap();
        let applied = filters.iter().any(|f| {
            f["type"] == "ExtensionRef"
                && f["extensionRef"]["group"] == "gateway.nginx.org"
                && f["extensionRef"]["kind"] == "SnippetsFilter"
                && f["extensionRef"]["name"] == at(filter, "/metadata/name").clone()
        });
        assert!(applied, "a rule without the SnippetsFilter is not checked: {rule}");
    }
}

/// Istio: the AuthorizationPolicy names a provider of the mesh config, and each provider calls
/// Turnstile's Service on its decision port.
#[test]
fn istio_policy_names_a_provider_that_calls_turnstile() {
    let docs = documents("istio.yaml");
    let (operator, policy) = (one(&docs, "IstioOperator"), one(&docs, "AuthorizationPolicy"));
    let providers = at(operator, "/spec/meshConfig/extensionProviders").as_array().unwrap();
    let mut provider_names: Vec<&str> = providers.iter().map(|p| text(p, "/name")).collect();
    for p in providers {
        let (kind, config) = match (p.get("envoyExtAuthzGrpc"), p.get("envoyExtAuthzHttp")) {
            (Some(grpc), None) => ("grpc", grpc),
            (None, Some(http)) => ("http", http),
            _ => panic!("not one ext_authz provider: {p}"),
        };
        assert_eq!(text(config, "/service"), HOST, "{p}");
        assert_eq!(at(config, "/port"), &Value::from(PORT), "{p}");
        assert_eq!(config["failOpen"], false, "{p}: a Turnstile that cannot be reached must deny");
        let body = at(config, "/includeRequestBodyInCheck");
        assert!((1..=MAX_BODY_BYTES).contains(&body["maxRequestBytes"].as_u64().unwrap()), "{p}");
        // A cut JSON body does not parse: j() extractors would deny what the whole body allows.
        assert_eq!(body["allowPartialMessage"], false, "{p}");
        if kind == "http" {
            assert_eq!(text(config, "/pathPrefix"), "/authz/envoy", "{p}");
            assert_all_in(&IDENTITY, &names(config, "/headersToUpstreamOnAllow"), "headersToUpstreamOnAllow");
            assert_all_in(
                &REQUEST_HEADERS,
                &names(config, "/includeRequestHeadersInCheck"),
                "includeRequestHeadersInCheck",
            );
        }
    }
    assert_eq!(at(policy, "/spec/action"), "CUSTOM");
    let named = text(policy, "/spec/provider/name");
    assert!(provider_names.contains(&named), "the policy names `{named}`, the mesh config has {provider_names:?}");
    // A CUSTOM policy without rules matches no request: Turnstile would never be asked.
    assert!(!at(policy, "/spec/rules").as_array().unwrap().is_empty());
    provider_names.sort();
    provider_names.dedup();
    assert_eq!(provider_names.len(), providers.len(), "two providers share a name");
    check_service(&docs);
}

/// The files that came before the Gateway API ones name the same port, endpoints and headers.
#[test]
fn the_other_proxies_name_turnstile_s_endpoints() {
    let docs = documents("ingress-nginx.yaml");
    let ingress = one(&docs, "Ingress");
    let annotation =
        |name: &str| text(ingress, &format!("/metadata/annotations/nginx.ingress.kubernetes.io~1{name}")).to_owned();
    assert_eq!(annotation("auth-url"), format!("http://{HOST}:{PORT}/authz/nginx"));
    let copied: Vec<String> =
        annotation("auth-response-headers").split(',').map(|h| h.trim().to_ascii_lowercase()).collect();
    assert_all_in(&IDENTITY, &copied, "auth-response-headers");

    let docs = documents("traefik-middleware.yaml");
    let (middleware, ingress) = (one(&docs, "Middleware"), one(&docs, "Ingress"));
    assert_eq!(text(middleware, "/spec/forwardAuth/address"), format!("http://{HOST}:{PORT}/authz/forward"));
    assert_eq!(at(middleware, "/spec/forwardAuth/trustForwardHeader"), false);
    assert_all_in(&IDENTITY, &names(middleware, "/spec/forwardAuth/authResponseHeaders"), "authResponseHeaders");
    let reference =
        format!("{}-{}@kubernetescrd", text(middleware, "/metadata/namespace"), text(middleware, "/metadata/name"));
    assert_eq!(text(ingress, "/metadata/annotations/traefik.ingress.kubernetes.io~1router.middlewares"), reference);

    let docs = documents("envoy.yaml");
    let filters = at(&docs[0], "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/http_filters");
    let ext_authz = filters.as_array().unwrap().iter().find(|f| f["name"] == "envoy.filters.http.ext_authz").unwrap();
    let config = at(ext_authz, "/typed_config");
    assert_eq!(config["failure_mode_allow"], false);
    assert_eq!(text(config, "/http_service/path_prefix"), "/authz/envoy");
    let cluster = text(config, "/http_service/server_uri/cluster");
    let clusters = at(&docs[0], "/static_resources/clusters").as_array().unwrap();
    let turnstile = clusters.iter().find(|c| c["name"] == cluster).unwrap();
    let address = at(turnstile, "/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address");
    assert_eq!(address["port_value"], PORT);
    // One prefix pattern copies the five headers.
    let upstream = at(config, "/http_service/authorization_response/allowed_upstream_headers/patterns");
    assert_eq!(upstream, &serde_json::json!([{"prefix": "x-auth-", "ignore_case": true}]));
    let request: Vec<String> = at(config, "/http_service/authorization_request/allowed_headers/patterns")
        .as_array()
        .unwrap()
        .iter()
        .map(|p| text(p, "/exact").to_owned())
        .collect();
    assert_all_in(&REQUEST_HEADERS, &request, "allowed_headers");

    let docs = documents("envoy-grpc.yaml");
    let filters = at(&docs[0], "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/http_filters");
    let ext_authz = filters.as_array().unwrap().iter().find(|f| f["name"] == "envoy.filters.http.ext_authz").unwrap();
    let config = at(ext_authz, "/typed_config");
    assert_eq!(config["failure_mode_allow"], false);
    assert!(at(config, "/with_request_body/max_request_bytes").as_u64().unwrap() <= MAX_BODY_BYTES);
    let cluster = text(config, "/grpc_service/envoy_grpc/cluster_name");
    let clusters = at(&docs[0], "/static_resources/clusters").as_array().unwrap();
    let turnstile = clusters.iter().find(|c| c["name"] == cluster).unwrap();
    let address = at(turnstile, "/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address");
    assert_eq!(address["port_value"], PORT);
    // gRPC is HTTP/2 only.
    let options = "/typed_extension_protocol_options/envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
    assert!(at(turnstile, &format!("{options}/explicit_http_config/http2_protocol_options")).is_object());

    let docs = documents("admission-webhook.yaml");
    let service = at(one(&docs, "ValidatingWebhookConfiguration"), "/webhooks/0/clientConfig/service");
    assert_eq!((text(service, "/namespace"), text(service, "/name")), (NAMESPACE, SERVICE));
    assert_eq!(text(service, "/path"), "/admission/validate");
    // The webhook is called over TLS, on the listener that serves it.
    assert_eq!(service["port"], 8443);
}
