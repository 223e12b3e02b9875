//! Parsers on the scanners' recorded real reports, and the gate's decisions as a table.

use super::*;

fn recorded(name: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/scanners").join(name))
        .unwrap()
}

#[test]
fn trivy_reports_are_read() {
    let findings = parse_trivy(&recorded("trivy-alpine-39-high-critical.json"), "img@linux/amd64").unwrap();
    assert_eq!(findings.len(), 2);
    assert_eq!(
        findings[0],
        Finding {
            id: "CVE-2019-14697".into(),
            severity: Severity::Critical,
            package: "musl".into(),
            installed: "1.1.20-r4".into(),
            fixed: Some("1.1.20-r5".into()),
            target: "img@linux/amd64".into()
        }
    );
    let buster = parse_trivy(&recorded("trivy-debian-buster.json"), "t").unwrap();
    let severities: Vec<Severity> = buster.iter().map(|finding| finding.severity).collect();
    assert_eq!(severities, [Severity::Low, Severity::Critical]);
    assert_eq!(buster[0].fixed, None, "no FixedVersion means unfixed");
    assert_eq!(parse_trivy(&recorded("trivy-alpine-310.json"), "t").unwrap().len(), 4);
}

#[test]
fn grype_reports_are_read() {
    let findings = parse_grype(&recorded("grype-image.json"), "t").unwrap();
    assert_eq!(findings.len(), 2);
    assert_eq!((findings[0].severity, findings[0].fixed.as_deref()), (Severity::Low, Some("1.2.1")));
    assert_eq!(
        (findings[1].id.as_str(), findings[1].severity, findings[1].fixed.as_deref()),
        ("CVE-1999-0002", Severity::Critical, None)
    );
    assert!(parse_grype(&recorded("grype-empty.json"), "t").unwrap().is_empty());
}

#[test]
fn malformed_reports_are_errors_that_say_which_scanner() {
    assert!(parse_trivy("{\"Results\": 3}", "t").unwrap_err().to_string().contains("not a Trivy JSON report"));
    assert!(parse_grype("<html>", "t").unwrap_err().to_string().contains("not a Grype JSON report"));
    let odd = recorded("grype-image.json").replace("\"Critical\"", "\"Catastrophic\"");
    assert!(parse_grype(&odd, "t").unwrap_err().to_string().contains("unknown severity `Catastrophic`"));
}

fn finding(id: &str, severity: Severity, fixed: bool) -> Finding {
    Finding {
        id: id.into(),
        severity,
        package: "p".into(),
        installed: "1".into(),
        fixed: fixed.then(|| "2".into()),
        target: "t".into(),
    }
}

#[test]
fn the_gate_as_a_table() {
    let allow =
        |id: &str, expires: &str| Allowed { id: id.into(), reason: "not reachable".into(), expires: expires.into() };
    let cases: Vec<(Policy, Finding, Verdict)> = vec![
        (Policy::default(), finding("A", Severity::High, true), Verdict::Blocks),
        (Policy::default(), finding("A", Severity::Critical, false), Verdict::Blocks),
        (Policy::default(), finding("A", Severity::Medium, true), Verdict::BelowThreshold),
        (
            Policy { fail_on: Severity::Medium, ..Policy::default() },
            finding("A", Severity::Medium, true),
            Verdict::Blocks,
        ),
        (
            Policy { fail_on: Severity::Critical, ..Policy::default() },
            finding("A", Severity::High, true),
            Verdict::BelowThreshold,
        ),
        (
            Policy { ignore_unfixed: true, ..Policy::default() },
            finding("A", Severity::Critical, false),
            Verdict::Unfixed,
        ),
        (Policy { ignore_unfixed: true, ..Policy::default() }, finding("A", Severity::Critical, true), Verdict::Blocks),
        (
            Policy { allow: vec![allow("A", "2026-12-31")], ..Policy::default() },
            finding("A", Severity::Critical, true),
            Verdict::Allowed("not reachable".into()),
        ),
        (
            Policy { allow: vec![allow("A", "2026-12-04")], ..Policy::default() },
            finding("A", Severity::Critical, true),
            Verdict::Allowed("not reachable".into()),
        ),
        (
            Policy { allow: vec![allow("A", "2026-12-03")], ..Policy::default() },
            finding("A", Severity::Critical, true),
            Verdict::BlocksAllowExpired("2026-12-03".into()),
        ),
        (
            Policy { allow: vec![allow("B", "2030-01-01")], ..Policy::default() },
            finding("A", Severity::Critical, true),
            Verdict::Blocks,
        ),
    ];
    for (index, (policy, finding, expected)) in cases.into_iter().enumerate() {
        let judged = judge(std::slice::from_ref(&finding), &policy, "2026-12-04");
        assert_eq!(judged[0].1, expected, "case {index}");
    }
}

#[test]
fn the_explanation_names_findings_and_how_to_accept_a_risk() {
    let findings =
        parse_trivy(&recorded("trivy-alpine-39-high-critical.json"), "registry/battlescope/x:v1@linux/arm64").unwrap();
    let policy = Policy {
        allow: vec![Allowed { id: "CVE-2019-14697".into(), reason: "r".into(), expires: "2020-01-01".into() }],
        ..Policy::default()
    };
    let text = explain(&judge(&findings, &policy, "2026-12-04"), &policy);
    assert!(text.contains("CRITICAL CVE-2019-14697 in musl 1.1.20-r4 (fixed in 1.1.20-r5) [registry/battlescope/x:v1@linux/arm64]; its allowlist entry expired on 2020-01-01"), "{text}");
    assert!(text.contains("[[scan.allow]]") && text.contains("expires = \"YYYY-MM-DD\""), "{text}");
}

#[test]
fn dockerfiles_must_end_as_a_numeric_non_root_user() {
    let root = "FROM node:20-alpine AS build\nFROM node:20-alpine\nUSER root\n";
    assert_eq!(check_dockerfile(root), ["the final stage runs as root (`USER root`): use `USER 1001:1001`"]);
    let none = "FROM node:20-alpine AS build\nUSER 1001\nFROM node:20-alpine\nCMD [\"node\"]\n";
    assert_eq!(
        check_dockerfile(none),
        ["the final stage has no USER, so the image runs as root: add `USER 1001:1001`"]
    );
    let named = "FROM node:20-alpine\nUSER node\n";
    assert!(check_dockerfile(named)[0].contains("`USER node` is a name"));
    assert!(check_dockerfile("FROM node:20-alpine\nUSER 0:0\n")[0].contains("runs as root"));
    assert!(check_dockerfile("FROM node:20-alpine\nUSER 1001:1001\n").is_empty());
}

#[test]
fn dockerfiles_may_not_use_latest_bases() {
    let text = "FROM node AS build\nFROM busybox:latest\nFROM build\nUSER 1001\n";
    assert_eq!(
        check_dockerfile(text),
        [
            "`FROM node` has no tag, which means `latest`: pin a version",
            "`FROM busybox:latest` uses `latest`: pin a version"
        ]
    );
}

#[test]
fn generated_dockerfiles_pass() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for (path, text) in crate::codegen::read_files(root, "docker").unwrap() {
        assert!(check_dockerfile(&text).is_empty(), "{path}: {:?}", check_dockerfile(&text));
    }
}

#[test]
fn scanner_commands() {
    let trivy = Scanner::Trivy.command("127.0.0.1:5000/o/s:v1", "linux/arm64", "r.json", true).unwrap();
    assert_eq!(
        trivy.to_string(),
        "TRIVY_INSECURE=true trivy image --quiet --format json --platform linux/arm64 --output r.json 127.0.0.1:5000/o/s:v1"
    );
    let grype = Scanner::Grype.command("ghcr.io/o/s:v1", "linux/amd64", "r.json", false).unwrap();
    assert_eq!(
        grype.to_string(),
        "GRYPE_REGISTRY_INSECURE_USE_HTTP=false grype registry:ghcr.io/o/s:v1 --platform linux/amd64 --output json --file r.json"
    );
}

#[test]
fn unpinned_bases_are_listed() {
    let text = "FROM --platform=$BUILDPLATFORM node:20-alpine@sha256:68f14ebca13ea9418a6239fef0b6ccc3c9c2c5f2f46f4aefa2fda67c30ebfa87 AS build\nFROM busybox:1.36\nFROM build\n";
    assert_eq!(unpinned_bases(text), ["busybox:1.36"]);
}
