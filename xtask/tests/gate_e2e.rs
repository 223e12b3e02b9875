//! The scan gate in a real release: an image with blocking findings reaches no tag at all (the
//! registry is left without any new tag), and accepting the risk in the manifest lets the same
//! release through. Trivy cannot run on these machines, so a stand-in answers with a report
//! the real Trivy recorded (tests/data/scanners, sources named there).
#![allow(clippy::print_stderr, reason = "tests narrate to stderr, which cargo test captures")]

mod support;

use std::process::Command;

use serde_json::Value;
use support::*;

#[test]
fn blocking_findings_leave_no_new_tag_and_an_accepted_risk_passes() {
    let Some(registry) = test_registry() else { return };
    let organization = "gate-e2e";
    let clone = clone_repository();
    let manifest_path = clone.path().join("services/services.toml");
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    std::fs::write(&manifest_path, manifest.replace("scanner = \"none\"", "scanner = \"trivy\"")).unwrap();
    git(clone.path(), &["commit", "--quiet", "--all", "--message", "scan with trivy"]);

    let bin = tempfile::tempdir().unwrap();
    let trivy = bin.path().join("trivy");
    std::fs::write(&trivy, "#!/bin/sh\n# Stands in for Trivy: answers with a report the real Trivy recorded.\nout=\nwhile [ $# -gt 0 ]; do [ \"$1\" = --output ] && out=$2; shift; done\ncp \"$RECORDED_REPORT\" \"$out\"\n").unwrap();
    Command::new("chmod").args(["+x", &trivy.display().to_string()]).status().unwrap();
    let report = repository_root().join("xtask/tests/data/scanners/trivy-alpine-39-high-critical.json");
    let release = || {
        let mut command = xtask(&[
            "release",
            "--bump",
            "minor",
            "--registry",
            &registry,
            "--organization",
            organization,
            "--base-mirror",
            &registry,
            "--network",
            "host",
            "--yes",
            "--json",
        ]);
        command
            .current_dir(clone.path())
            .env("XTASK_ROOT", clone.path())
            .env("PATH", format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap()))
            .env("RECORDED_REPORT", &report);
        run(command)
    };

    let head = git(clone.path(), &["rev-parse", "HEAD"]);
    let output = release();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "a policy refusal: {stderr}");
    assert!(stderr.contains("the scan gate refused v3.1.0: nothing was tagged for release"), "{stderr}");
    assert!(stderr.contains("CRITICAL CVE-2019-14697 in musl 1.1.20-r4 (fixed in 1.1.20-r5)"), "{stderr}");
    assert!(
        stderr.contains("/gate-e2e/frontend:v3.1.0-dev-") && stderr.contains("@linux/arm64]"),
        "the image and platform are named: {stderr}"
    );
    assert!(stderr.contains("[[scan.allow]]"), "how to accept a risk: {stderr}");
    for service in SERVICES {
        assert_eq!(
            tag_digests(&registry, &format!("{organization}/{service}")),
            Vec::new(),
            "{service}: no new tag at all"
        );
    }
    assert_eq!(git(clone.path(), &["rev-parse", "HEAD"]), head, "no release commit");
    assert_eq!(git(clone.path(), &["status", "--porcelain"]).trim(), "");
    assert!(
        !clone.path().join("target/xtask/release/journal.json").exists(),
        "nothing to resume: the release did not happen"
    );

    // Accept the risk, with a reason and an expiry, and release again.
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    std::fs::write(
        &manifest_path,
        format!("{manifest}\n[[scan.allow]]\nid = \"CVE-2019-14697\"\nreason = \"the services do not call the affected musl functions\"\nexpires = \"2099-12-31\"\n"),
    )
    .unwrap();
    git(clone.path(), &["commit", "--quiet", "--all", "--message", "accept CVE-2019-14697"]);
    let output = release();
    assert!(output.status.success());
    let outcome: Value = serde_json::from_slice(&output.stdout).unwrap();
    let scanned =
        outcome["checklist"].as_array().unwrap().iter().find(|item| item["item"] == "image scanned").unwrap().clone();
    assert_eq!(scanned["ok"], true, "{scanned}");
    assert!(
        scanned["evidence"].as_str().unwrap().starts_with("trivy: 28 findings, 28 at HIGH or above, each allowed"),
        "{scanned}"
    );
    let digests = tag_digests(&registry, &format!("{organization}/battle-service"));
    assert!(digests.iter().any(|(tag, _)| tag == "v3.1.0"), "{digests:?}");
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(clone.path().join("target/xtask/release/v3.1.0.json")).unwrap())
            .unwrap();
    let attachments = record["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 14, "a CycloneDX SBOM per service and platform");
    let sbom: Value =
        serde_json::from_str(&std::fs::read_to_string(clone.path().join(attachments[0].as_str().unwrap())).unwrap())
            .unwrap();
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    assert!(
        sbom["components"].as_array().is_some_and(|components| !components.is_empty()),
        "syft found the image's packages"
    );
}
