//! The committed CRDs are what the code generates.

#[test]
fn committed_crds_match_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/turnstile.yaml");
    let committed = std::fs::read_to_string(path).expect("crds/turnstile.yaml is committed");
    let generated = turnstile::sources::crds_yaml();
    assert!(
        committed == generated,
        "crds/turnstile.yaml is out of date: run `cargo run -- crds > crds/turnstile.yaml`"
    );
}

#[test]
fn every_kind_is_cluster_scoped_with_status_and_short_names() {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&turnstile::sources::crds_yaml()).unwrap();
    assert_eq!(docs.len(), 5);
    for d in &docs {
        let spec = &d["spec"];
        assert_eq!(spec["scope"], "Cluster");
        let version = &spec["versions"][0];
        assert_eq!(version["name"], "v1alpha1");
        assert!(version["subresources"]["status"].is_object(), "{:?}", spec["names"]["kind"]);
        assert!(version["additionalPrinterColumns"].as_array().unwrap().len() >= 3);
        // metav1.Condition, as `kubectl wait --for=condition=Ready` and other tools expect.
        let condition =
            &version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["conditions"]["items"];
        let required: Vec<&str> = condition["required"].as_array().unwrap().iter().filter_map(|r| r.as_str()).collect();
        assert_eq!(required, ["lastTransitionTime", "message", "reason", "status", "type"]);
        assert_eq!(condition["properties"]["lastTransitionTime"]["format"], "date-time");
    }
    let short: Vec<&str> = docs.iter().filter_map(|d| d["spec"]["names"]["shortNames"][0].as_str()).collect();
    assert_eq!(short, ["ou", "pset", "ub", "apicat"]);
}
