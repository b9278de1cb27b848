use super::*;
use crate::BrokerError;
use crate::domain::{Refusal, Status};
use regex::Regex;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sources(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && let Ok(text) = std::fs::read_to_string(&path)
        {
            out.push((path, text));
        }
    }
}

fn documented() -> BTreeSet<(String, u16)> {
    ERROR_CODES
        .iter()
        .map(|(c, s, _)| ((*c).to_owned(), *s))
        .collect()
}

/// Every `(code, status)` the code can answer with: the codes written into
/// `BrokerError` variants anywhere in the crate, the fixed ones, the
/// refusals, and the router's own.
fn answered() -> BTreeSet<(String, u16)> {
    let mut files = Vec::new();
    sources(&crate_dir().join("src"), &mut files);
    let variant =
        Regex::new(r#"(InvalidInput|Denied|Conflict|Limited|Incomplete)\s*\{\s*code: "([a-z_]+)""#)
            .unwrap();
    let routed = Regex::new(r#"StatusCode::([A-Z_]+),\s*"([a-z_]+)""#).unwrap();
    let mut out = BTreeSet::new();
    for (path, text) in &files {
        if path.starts_with(crate_dir().join("src/api/openapi")) {
            continue;
        }
        let literals = text.matches("code: \"").count();
        let found = variant.captures_iter(text).count();
        assert_eq!(
            literals,
            found,
            "{}: a `code: \"...\"` this test cannot attribute to a BrokerError variant",
            path.display()
        );
        for c in variant.captures_iter(text) {
            let status = match &c[1] {
                "InvalidInput" => 400,
                "Denied" => 403,
                "Conflict" => 409,
                "Limited" => 429,
                _ => 503,
            };
            out.insert((c[2].to_owned(), status));
        }
        if path.ends_with("api/routes.rs") {
            for c in routed.captures_iter(text) {
                let status = match &c[1] {
                    "NOT_FOUND" => 404,
                    "METHOD_NOT_ALLOWED" => 405,
                    other => panic!("routes.rs answers {other}; add it here and to ERROR_CODES"),
                };
                out.insert((c[2].to_owned(), status));
            }
        }
    }
    let fixed = [
        BrokerError::invalid("x"),
        BrokerError::Unauthenticated("x".into()),
        BrokerError::NotFound("x".into()),
        BrokerError::PayloadTooLarge { limit: 1 },
        BrokerError::Throttled,
        BrokerError::Unavailable {
            message: "x".into(),
            source: None,
        },
        BrokerError::Internal { detail: "x".into() },
    ];
    for e in fixed {
        out.insert((e.code().to_owned(), e.status()));
    }
    let refusal = |r: Refusal| {
        // Exhaustive, so a new refusal fails to compile here until it is listed.
        match r {
            Refusal::NotPending(_)
            | Refusal::NotActive(_)
            | Refusal::SelfReview
            | Refusal::AlreadyApproved
            | Refusal::DigestMismatch
            | Refusal::NotRequester
            | Refusal::NotPermitted
            | Refusal::NotDue => {}
        }
        let e = BrokerError::from(r);
        (e.code().to_owned(), e.status())
    };
    for r in [
        Refusal::NotPending(Status::Active),
        Refusal::NotActive(Status::Pending),
        Refusal::SelfReview,
        Refusal::AlreadyApproved,
        Refusal::DigestMismatch,
        Refusal::NotRequester,
        Refusal::NotPermitted,
        Refusal::NotDue,
    ] {
        out.insert(refusal(r));
    }
    out
}

#[test]
fn every_error_code_the_code_answers_is_documented_with_its_status() {
    let missing: Vec<_> = answered().difference(&documented()).cloned().collect();
    assert!(missing.is_empty(), "add to ERROR_CODES: {missing:?}");
}

#[test]
fn the_document_names_no_error_code_the_code_cannot_answer() {
    let stale: Vec<_> = documented().difference(&answered()).cloned().collect();
    assert!(stale.is_empty(), "remove from ERROR_CODES: {stale:?}");
}

#[test]
fn every_mounted_route_is_documented_and_nothing_else() {
    let text = std::fs::read_to_string(crate_dir().join("src/api/routes.rs")).unwrap();
    let route = Regex::new(r#"\.route\(\s*"([^"]+)",\s*([^)]*\))"#).unwrap();
    let method = Regex::new(r"\b(get|post|put|patch|delete)\(").unwrap();
    let mut mounted = BTreeSet::new();
    for c in route.captures_iter(&text) {
        for m in method.captures_iter(&c[2]) {
            mounted.insert((c[1].to_owned(), m[1].to_owned()));
        }
    }
    // Methods chained on one route: `post(a).get(b)`.
    let chained = Regex::new(r#"\.route\(\s*"([^"]+)",\s*[a-z]+\([^)]*\)\.(get|post)\("#).unwrap();
    for c in chained.captures_iter(&text) {
        mounted.insert((c[1].to_owned(), c[2].to_owned()));
    }
    assert!(mounted.len() >= 10, "parsed too few routes: {mounted:?}");
    let doc = document();
    let mut described = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for m in ops.as_object().unwrap().keys() {
            described.insert((path.clone(), m.clone()));
        }
    }
    assert_eq!(mounted, described);
}

#[test]
fn every_reference_resolves_and_every_operation_has_a_unique_id() {
    let doc = document();
    let text = doc.to_string();
    let reference = Regex::new(r##""\$ref":"#/components/([a-zA-Z]+)/([A-Za-z0-9]+)""##).unwrap();
    for c in reference.captures_iter(&text) {
        assert!(
            doc["components"][&c[1]][&c[2]].is_object(),
            "unresolved {}/{}",
            &c[1],
            &c[2]
        );
    }
    let mut ids = BTreeSet::new();
    for ops in doc["paths"].as_object().unwrap().values() {
        for op in ops.as_object().unwrap().values() {
            assert!(ids.insert(op["operationId"].as_str().unwrap().to_owned()));
        }
    }
    let link = Regex::new(r#""operationId":"([A-Za-z]+)","parameters""#).unwrap();
    for c in link.captures_iter(&text) {
        assert!(ids.contains(&c[1]), "a link to unknown operation {}", &c[1]);
    }
}

#[test]
fn the_published_copy_is_the_generated_document() {
    let path = crate_dir().join("../docs/openapi.json");
    if std::env::var_os("TOLLGATE_WRITE_OPENAPI").is_some() {
        std::fs::write(&path, document_text()).unwrap();
    }
    let published = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        published == document_text(),
        "docs/openapi.json differs from the generated document; \
         regenerate it with `TOLLGATE_WRITE_OPENAPI=1 cargo test -p tollgate openapi`"
    );
}
