//! The release's scan gate and SBOMs: what was built is checked (image config: numeric non-root
//! user, labels) and scanned for vulnerabilities before any release tag exists; a refusal
//! removes the build's staging tags, so the registry is left without any new tag.

use std::path::Path;

use anyhow::Context;

use super::Plan;
use crate::error::PolicyRefusal;
use crate::manifest::Platform;
use crate::process::Cmd;
use crate::registry::Client;
use crate::registry::oci::{self, ImageConfig};
use crate::scan::{self, Finding, Policy};

/// The labels every image must carry.
pub const REQUIRED_LABELS: [&str; 7] = ["title", "description", "version", "revision", "source", "created", "licenses"];

/// Where the scan reports and SBOMs of a release go.
pub fn evidence_directory(plan: &Plan) -> String {
    format!("{}/{}", super::state::DIRECTORY, plan.version)
}

/// Where a scan report or SBOM of one service and platform is kept; the commands write there
/// and the gate reads from there.
fn evidence_file(plan_version: &str, kind: &str, service: &str, platform: Platform) -> String {
    let extension = if kind == "sbom" { "cdx.json" } else { "json" };
    format!("{}/{plan_version}/{kind}/{service}-{}.{extension}", super::state::DIRECTORY, platform.arch())
}

/// The scanner commands of one service: one per platform, each writing its report.
pub fn scan_commands(
    plan_version: &str,
    policy: &Policy,
    image: &str,
    service: &str,
    platforms: &[Platform],
    insecure: bool,
) -> Vec<Cmd> {
    platforms
        .iter()
        .filter_map(|platform| {
            let report = evidence_file(plan_version, "scan", service, *platform);
            policy.scanner.command(image, platform.as_str(), &report, insecure)
        })
        .collect()
}

/// syft's commands for one service: a CycloneDX SBOM per platform of the image the release
/// publishes, read from the tag it is published from (so SBOMs are made while other services
/// still build), named as the release.
pub fn sbom_commands(
    plan_version: &str,
    source_image: &str,
    released_repository: &str,
    service: &str,
    platforms: &[Platform],
    insecure: bool,
) -> Vec<Cmd> {
    platforms
        .iter()
        .map(|platform| {
            let file = evidence_file(plan_version, "sbom", service, *platform);
            Cmd::new("syft")
                .args([
                    format!("registry:{source_image}"),
                    "--platform".into(),
                    platform.as_str().into(),
                    "--source-name".into(),
                    released_repository.into(),
                    "--source-version".into(),
                    plan_version.into(),
                    "--output".into(),
                    format!("cyclonedx-json={file}"),
                ])
                .env("SYFT_REGISTRY_INSECURE_USE_HTTP", if insecure { "true" } else { "false" })
                .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
        })
        .collect()
}

/// Checks and scans one built service: what its image config says against the rules, and the
/// scanner's findings for every platform (judged later, with every other service's).
pub fn check(root: &Path, plan: &Plan, client: &Client, service: &str) -> anyhow::Result<(Vec<String>, Vec<Finding>)> {
    std::fs::create_dir_all(root.join(evidence_directory(plan)).join("scan"))?;
    let path = format!("{}/{service}", plan.organization);
    let problems = image_problems(client, &path, &plan.build_tag)?
        .into_iter()
        .map(|problem| format!("{service}: {problem}"))
        .collect();
    let mut findings = Vec::new();
    let step = plan.steps.iter().find(|step| step.id == format!("scan:{service}"));
    // One command per platform, in the plan's platform order (none when scanning is off).
    for (platform, command) in plan.platforms.iter().zip(step.map(|step| step.commands.as_slice()).unwrap_or_default())
    {
        eprintln!("$ {command}");
        crate::retry::transient(|| command.read(root), |note| eprintln!("{command}: {note}"))
            .with_context(|| format!("scan {service}"))?;
        let report = evidence_file(&plan.version, "scan", service, *platform);
        let text =
            std::fs::read_to_string(root.join(&report)).with_context(|| format!("read the scan report {report}"))?;
        let target = format!("{}/{path}:{}@{platform}", plan.registry, plan.build_tag);
        findings
            .extend(plan.scan.scanner.parse(&text, &target).with_context(|| format!("read the scan report {report}"))?);
    }
    Ok((problems, findings))
}

/// Whether these image problems and findings fail the gate under `policy`.
pub fn blocks(problems: &[String], findings: &[Finding], policy: &Policy, today: &str) -> bool {
    !problems.is_empty() || scan::judge(findings, policy, today).iter().any(|(_, verdict)| scan::blocks(verdict))
}

/// The gate: every service's problems and findings judged together against the policy. On a
/// refusal (exit 3) naming each problem, the staging tags of everything built are removed first.
pub fn judge(
    plan: &Plan,
    client: &Client,
    problems: Vec<String>,
    findings: Vec<Finding>,
    today: &str,
) -> anyhow::Result<Vec<Finding>> {
    let policy = &plan.scan;
    if !blocks(&problems, &findings, policy, today) {
        return Ok(findings);
    }
    let judged = scan::judge(&findings, policy, today);
    let blocked = judged.iter().any(|(_, verdict)| scan::blocks(verdict));
    remove_staging(plan, client)?;
    let mut message = format!(
        "the scan gate refused {}: nothing was tagged for release (the build's staging tags were removed)",
        plan.version
    );
    if !problems.is_empty() {
        message.push_str(&format!("\nimage checks:\n  {}", problems.join("\n  ")));
    }
    if blocked {
        message.push_str(&format!("\nvulnerabilities:\n{}", scan::explain(&judged, policy)));
    }
    Err(PolicyRefusal(message).into())
}

/// What the image config says against the rules: a numeric non-root user, the OCI labels.
fn image_problems(client: &Client, path: &str, tag: &str) -> anyhow::Result<Vec<String>> {
    let index = client
        .get_manifest(path, tag)?
        .with_context(|| format!("{path}:{tag} is missing: the build did not push it"))?;
    let mut problems = Vec::new();
    for (platform, descriptor) in oci::platform_children(&index.index()?) {
        let image = client
            .get_manifest(path, &descriptor.digest)?
            .with_context(|| format!("{path}@{} is missing", descriptor.digest))?;
        let config: ImageConfig = client.get_blob_json(path, &image.image()?.config.digest)?;
        let user = crate::verify::user_check(&platform, &config.config.user);
        if !user.ok {
            problems.push(user.what);
        }
        let labels = config.config.labels.unwrap_or_default();
        let missing: Vec<&str> = REQUIRED_LABELS
            .iter()
            .filter(|label| !labels.contains_key(&format!("org.opencontainers.image.{label}")))
            .copied()
            .collect();
        if !missing.is_empty() {
            problems.push(format!("{platform}: labels missing: {}", missing.join(", ")));
        }
    }
    Ok(problems)
}

/// Deletes the staging index of every service of the plan (by digest; it carries no other tag).
fn remove_staging(plan: &Plan, client: &Client) -> anyhow::Result<()> {
    for service in &plan.services {
        let path = format!("{}/{service}", plan.organization);
        if let Some(digest) = client.head_manifest(&path, &plan.build_tag)? {
            client
                .delete_manifest(&path, &digest)
                .with_context(|| format!("remove the staging tag {path}:{}", plan.build_tag))?;
        }
    }
    Ok(())
}

/// Runs syft for one service; returns the SBOM files written.
pub fn sbom(root: &Path, plan: &Plan, step: &super::Step) -> anyhow::Result<Vec<String>> {
    let service = &step.id["sbom:".len()..];
    let mut files = Vec::new();
    for (platform, command) in plan.platforms.iter().zip(&step.commands) {
        let output = evidence_file(&plan.version, "sbom", service, *platform);
        std::fs::create_dir_all(root.join(&output).parent().unwrap())?;
        eprintln!("$ {command}");
        crate::retry::transient(|| command.read(root), |note| eprintln!("{command}: {note}"))
            .with_context(|| step.description.clone())?;
        let text = std::fs::read_to_string(root.join(&output)).with_context(|| format!("read {output}"))?;
        let document: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{output} is not JSON"))?;
        anyhow::ensure!(document["bomFormat"] == "CycloneDX", "{output} is not a CycloneDX SBOM");
        files.push(output);
    }
    Ok(files)
}
