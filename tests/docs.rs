//! The documentation keeps up with the code: every field of every kind is named on its page,
//! every condition reason the operator can set is explained in the troubleshooting page, the
//! README links the pages, and "How to add a vendor" lists every file a vendor must appear in.

use std::collections::BTreeSet;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn field_paths(schema: &serde_yaml::Value, path: &str, out: &mut BTreeSet<String>) {
    let Some(props) = schema.get("properties").and_then(|p| p.as_mapping()) else {
        return;
    };
    for (name, sub) in props {
        let name = name.as_str().expect("property name");
        let p = format!("{path}.{name}");
        out.insert(p.clone());
        let sub = match sub.get("items") {
            Some(items) => items,
            None => sub,
        };
        field_paths(sub, &p, out);
    }
}

#[test]
fn every_field_of_every_kind_is_documented() {
    let crds = read("crds/credsync.yaml");
    for doc in serde_yaml::Deserializer::from_str(&crds) {
        let crd: serde_yaml::Value = serde::Deserialize::deserialize(doc).expect("CRD yaml");
        let kind = crd["spec"]["names"]["kind"].as_str().expect("kind");
        let page = match kind {
            "VendorConnection" | "ClusterVendorConnection" => "vendor-connection",
            "CrmUserCredential" => "crm-user-credential",
            "ErpIdentity" => "erp-identity",
            "SsoAppCredential" => "sso-app-credential",
            other => panic!("no docs page for {other}"),
        };
        let text = read(&format!("docs/resources/{page}.md"));
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
        let mut paths = BTreeSet::new();
        for top in ["spec", "status"] {
            field_paths(&schema[top], top, &mut paths);
        }
        assert!(paths.len() > 5, "{kind}: {paths:?}");
        let missing: Vec<_> = paths
            .iter()
            .filter(|p| !text.contains(&format!("`{p}`")))
            .collect();
        assert!(
            missing.is_empty(),
            "docs/resources/{page}.md does not document {kind} fields {missing:?} (python3 hack/crd-fields.py {kind})"
        );
    }
}

#[test]
fn every_reason_is_in_troubleshooting() {
    let page = read("docs/troubleshooting.md");
    // Reasons are CamelCase string literals passed where a reason is expected; collect those of
    // the files that produce them.
    let mut reasons = BTreeSet::new();
    for dir in [
        "src/reconcile",
        "src/connections",
        "src/kinds",
        "src/vendors",
    ] {
        for entry in std::fs::read_dir(format!("{ROOT}/{dir}")).expect("dir") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("source");
            // The reason may follow its call on the next line (rustfmt): skip whitespace.
            for key in [
                "reason: ",
                "transient(",
                "permanent(",
                "invalid(",
                "connection(",
            ] {
                for (at, _) in text.match_indices(key) {
                    let rest = text[at + key.len()..].trim_start();
                    if let Some(rest) = rest.strip_prefix('"')
                        && let Some(end) = rest.find('"')
                    {
                        reasons.insert(rest[..end].to_string());
                    }
                }
            }
        }
    }
    for line in read("src/secrets.rs").lines() {
        if let Some(at) = line.find("=> \"") {
            let rest = &line[at + 4..];
            if let Some(end) = rest.find('"') {
                reasons.insert(rest[..end].to_string());
            }
        }
    }
    for reason in [
        "Synced",
        "Paused",
        "DeletionBlocked",
        "DeletionFailed",
        "KubernetesApiError",
        "InternalError",
    ] {
        reasons.insert(reason.into());
    }
    reasons
        .retain(|r| r.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && !r.contains(' '));
    assert!(reasons.len() > 30, "{reasons:?}");
    let missing: Vec<_> = reasons
        .iter()
        .filter(|r| !page.contains(&format!("`{r}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/troubleshooting.md does not explain {missing:?}"
    );
}

#[test]
fn readme_links_the_docs() {
    let readme = read("README.md");
    for page in [
        "docs/resources/vendor-connection.md",
        "docs/resources/crm-user-credential.md",
        "docs/resources/erp-identity.md",
        "docs/resources/sso-app-credential.md",
        "docs/troubleshooting.md",
        "docs/multi-tenancy.md",
        "docs/vendors/superoffice.md",
        "docs/vendors/oracle-crm-on-demand.md",
        "docs/vendors/apex-erp.md",
        "docs/vendors/helloid.md",
        "docs/multi-tenancy-webhook.md",
        "docs/architecture.md",
        "docs/gitops.md",
        "docs/metrics.md",
        "docs/benchmarks.md",
    ] {
        assert!(
            readme.contains(&format!("]({page})")),
            "README links {page}"
        );
        assert!(std::path::Path::new(&format!("{ROOT}/{page}")).exists());
    }
}

/// Every `.rs` file under `dir`, recursively, as paths from the crate root.
fn rust_files(dir: &str, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(format!("{ROOT}/{dir}")).expect("dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = format!("{dir}/{name}");
        if entry.file_type().expect("file type").is_dir() {
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// The compiler points at each place a new vendor must be handled (exhaustive matches); this
/// keeps the page's list of those places true. A source file that names every vendor's enum
/// variant is a per-vendor place, and must be listed.
#[test]
fn how_to_add_a_vendor_lists_every_place() {
    let page = read("docs/architecture.md");
    let section = page
        .split("## How to add a vendor")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("docs/architecture.md has a section \"How to add a vendor\"");
    let vendors = ["SuperOffice", "OracleCrmOnDemand", "ApexErp", "HelloId"];
    let mut files = Vec::new();
    rust_files("src", &mut files);
    let per_vendor: Vec<&String> = files
        .iter()
        .filter(|path| {
            let text = read(path);
            vendors.iter().all(|v| {
                text.match_indices(&format!("::{v}")).any(|(at, _)| {
                    let next = text[at + v.len() + 2..].chars().next();
                    !next.is_some_and(|c| c.is_alphanumeric() || c == '_')
                })
            })
        })
        .collect();
    assert!(
        per_vendor
            .iter()
            .any(|p| p.as_str() == "src/vendors/mod.rs"),
        "the scan finds the vendor dispatch: {per_vendor:?}"
    );
    let unlisted: Vec<_> = per_vendor
        .iter()
        .filter(|path| !section.contains(&format!("`{path}`")))
        .collect();
    assert!(
        unlisted.is_empty(),
        "docs/architecture.md \"How to add a vendor\" does not list {unlisted:?}, which name every vendor"
    );
    // Every file the section names exists (a `<vendor>` placeholder stands for a vendor's).
    for (at, _) in section.match_indices('`') {
        let rest = &section[at + 1..];
        let Some(end) = rest.find('`') else { break };
        let named = &rest[..end];
        if (named.starts_with("src/") || named.starts_with("docs/") || named.starts_with("crds/"))
            && !named.contains('<')
        {
            assert!(
                std::path::Path::new(&format!("{ROOT}/{named}")).exists(),
                "docs/architecture.md \"How to add a vendor\" names {named}, which does not exist"
            );
        }
    }
}
