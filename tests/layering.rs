//! The engine is pure (DESIGN §7): it names no Kubernetes, HTTP or async crate, and no
//! outer layer of this crate.

#[test]
fn the_engine_depends_on_no_outer_layer() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/engine");
    let forbidden = ["kube", "k8s_openapi", "axum", "tokio", "hyper", "crate::sources", "crate::cli"];
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in forbidden {
                let uses = code.contains(&format!("{word}::")) || code.contains(&format!("use {word}"));
                assert!(!uses, "{}:{}: the engine must not use `{word}`: {line}", path.display(), n + 1);
            }
        }
        checked += 1;
    }
    assert!(checked >= 8, "expected the engine's modules, found {checked}");
}
