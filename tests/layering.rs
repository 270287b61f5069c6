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

/// Watchers and the file loader feed the publisher; neither imports the HTTP server, and the
/// published snapshot does not either (STYLE 12).
#[test]
fn sources_and_the_publisher_do_not_use_http() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![root.join("publisher.rs")];
    let mut dirs = vec![root.join("sources")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() { dirs.push(path) } else { files.push(path) }
        }
    }
    assert!(files.len() >= 8, "expected the sources' modules, found {}", files.len());
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in ["crate::http", "axum", "crate::run", "crate::cli"] {
                assert!(!code.contains(word), "{}:{}: must not use `{word}`: {line}", path.display(), n + 1);
            }
        }
    }
}
