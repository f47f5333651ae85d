//! crds/ is generated from the Rust types (`credsync crds`); this fails when they drift.

#[test]
fn crds_folder_matches_the_rust_types() {
    let generated = credsync::api::crds_yaml().expect("CRDs serialize");
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/credsync.yaml"))
            .expect("crds/credsync.yaml");
    assert!(
        generated == committed,
        "crds/credsync.yaml is stale: run `make crds` (cargo run -- crds > crds/credsync.yaml)"
    );
}

#[test]
fn every_kind_has_the_credsync_columns_and_category() {
    for crd in credsync::api::crds() {
        let names = &crd.spec.names;
        assert!(
            names
                .categories
                .as_ref()
                .is_some_and(|c| c.iter().any(|c| c == "credsync")),
            "{}",
            names.kind
        );
        assert!(
            names.short_names.as_ref().is_some_and(|s| !s.is_empty()),
            "{}",
            names.kind
        );
        let version = &crd.spec.versions[0];
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{} status subresource",
            names.kind
        );
        let columns: Vec<&str> = version
            .additional_printer_columns
            .as_ref()
            .map(|c| c.iter().map(|c| c.name.as_str()).collect())
            .unwrap_or_default();
        assert_eq!(
            columns,
            ["Ready", "Reason", "Connection", "Last-Synced", "Age"],
            "{}",
            names.kind
        );
    }
}

#[test]
fn every_field_is_documented_for_kubectl_explain() {
    fn walk(path: &str, schema: &serde_json::Value, missing: &mut Vec<String>) {
        if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
            for (name, sub) in props {
                let here = format!("{path}.{name}");
                if sub.get("description").is_none()
                    && !matches!(name.as_str(), "apiVersion" | "kind" | "metadata")
                {
                    missing.push(here.clone());
                }
                walk(&here, sub, missing);
            }
        }
        if let Some(items) = schema.get("items") {
            walk(&format!("{path}[]"), items, missing);
        }
    }
    let mut missing = Vec::new();
    for crd in credsync::api::crds() {
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).expect("schema");
        walk(
            &crd.spec.names.kind,
            &schema["openAPIV3Schema"],
            &mut missing,
        );
    }
    // Condition's own fields come documented from k8s-openapi.
    missing.retain(|m| !m.contains(".conditions[]."));
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:#?}"
    );
}
