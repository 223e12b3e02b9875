//! The scan gate (R10, R15): vulnerability scanners behind one interface (Trivy, Grype), their
//! JSON reports read into one findings model, and the manifest's policy deciding, purely,
//! which findings block a release. Also the Dockerfile rules every final stage must meet.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::process::Cmd;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Unknown,
    Negligible,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Trivy writes `HIGH`, Grype `High`.
    pub fn parse(text: &str) -> Option<Severity> {
        Some(match text.to_ascii_lowercase().as_str() {
            "unknown" => Severity::Unknown,
            "negligible" => Severity::Negligible,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format!("{self:?}").to_ascii_uppercase())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scanner {
    Trivy,
    Grype,
    /// Scanning is off: the checklist says "not done".
    None,
}

impl Scanner {
    pub fn program(self) -> Option<&'static str> {
        match self {
            Scanner::Trivy => Some("trivy"),
            Scanner::Grype => Some("grype"),
            Scanner::None => None,
        }
    }

    pub fn install_hint(self) -> &'static str {
        match self {
            Scanner::Trivy => "install Trivy (https://trivy.dev/latest/getting-started/installation/)",
            Scanner::Grype => "install Grype (https://github.com/anchore/grype#installation)",
            Scanner::None => "",
        }
    }

    /// The command that scans `image` for `platform` and writes its JSON report to `report`.
    /// `insecure` lets the scanner read a plain-HTTP (loopback) registry.
    pub fn command(self, image: &str, platform: &str, report: &str, insecure: bool) -> Option<Cmd> {
        let command = match self {
            Scanner::Trivy => Cmd::new("trivy")
                .args(["image", "--quiet", "--format", "json", "--platform", platform, "--output", report, image])
                .env("TRIVY_INSECURE", if insecure { "true" } else { "false" }),
            Scanner::Grype => Cmd::new("grype")
                .args([
                    format!("registry:{image}"),
                    "--platform".into(),
                    platform.into(),
                    "--output".into(),
                    "json".into(),
                    "--file".into(),
                    report.into(),
                ])
                .env("GRYPE_REGISTRY_INSECURE_USE_HTTP", if insecure { "true" } else { "false" }),
            Scanner::None => return None,
        };
        Some(command)
    }

    /// Reads this scanner's JSON report.
    pub fn parse(self, report: &str, target: &str) -> anyhow::Result<Vec<Finding>> {
        match self {
            Scanner::Trivy => parse_trivy(report, target),
            Scanner::Grype => parse_grype(report, target),
            Scanner::None => Ok(Vec::new()),
        }
    }
}

/// One vulnerability in one package of one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub id: String,
    pub severity: Severity,
    pub package: String,
    pub installed: String,
    /// The version that fixes it, when there is one.
    pub fixed: Option<String>,
    /// The image and platform it was found in.
    pub target: String,
}

fn severity_of(text: &str, id: &str) -> anyhow::Result<Severity> {
    Severity::parse(text).ok_or_else(|| anyhow::anyhow!("{id}: unknown severity `{text}`"))
}

/// Trivy's `--format json` (schema 2): `Results[].Vulnerabilities[]`.
pub fn parse_trivy(report: &str, target: &str) -> anyhow::Result<Vec<Finding>> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Report {
        #[serde(default)]
        results: Vec<Result>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Result {
        #[serde(default)]
        vulnerabilities: Option<Vec<Vulnerability>>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Vulnerability {
        #[serde(rename = "VulnerabilityID")]
        vulnerability_id: String,
        pkg_name: String,
        #[serde(default)]
        installed_version: String,
        #[serde(default)]
        fixed_version: Option<String>,
        severity: String,
    }
    let report: Report =
        serde_json::from_str(report).map_err(|error| anyhow::anyhow!("not a Trivy JSON report: {error}"))?;
    let mut findings = Vec::new();
    for vulnerability in report.results.into_iter().flat_map(|result| result.vulnerabilities.unwrap_or_default()) {
        findings.push(Finding {
            severity: severity_of(&vulnerability.severity, &vulnerability.vulnerability_id)?,
            id: vulnerability.vulnerability_id,
            package: vulnerability.pkg_name,
            installed: vulnerability.installed_version,
            fixed: vulnerability.fixed_version.filter(|fixed| !fixed.is_empty()),
            target: target.to_string(),
        });
    }
    Ok(findings)
}

/// Grype's `-o json`: `matches[]` with `vulnerability` and `artifact`.
pub fn parse_grype(report: &str, target: &str) -> anyhow::Result<Vec<Finding>> {
    #[derive(Deserialize)]
    struct Report {
        matches: Vec<Match>,
    }
    #[derive(Deserialize)]
    struct Match {
        vulnerability: Vulnerability,
        artifact: Artifact,
    }
    #[derive(Deserialize)]
    struct Vulnerability {
        id: String,
        severity: String,
        #[serde(default)]
        fix: Option<Fix>,
    }
    #[derive(Deserialize)]
    struct Fix {
        #[serde(default)]
        versions: Vec<String>,
        #[serde(default)]
        state: String,
    }
    #[derive(Deserialize)]
    struct Artifact {
        name: String,
        version: String,
    }
    let report: Report =
        serde_json::from_str(report).map_err(|error| anyhow::anyhow!("not a Grype JSON report: {error}"))?;
    report
        .matches
        .into_iter()
        .map(|found| {
            let fixed = found
                .vulnerability
                .fix
                .filter(|fix| fix.state == "fixed")
                .and_then(|fix| fix.versions.into_iter().next());
            Ok(Finding {
                severity: severity_of(&found.vulnerability.severity, &found.vulnerability.id)?,
                id: found.vulnerability.id,
                package: found.artifact.name,
                installed: found.artifact.version,
                fixed,
                target: target.to_string(),
            })
        })
        .collect()
}

/// An accepted risk: a finding id, why, and until when (`YYYY-MM-DD`, inclusive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allowed {
    pub id: String,
    pub reason: String,
    pub expires: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub scanner: Scanner,
    /// The lowest severity that blocks.
    pub fail_on: Severity,
    /// Findings without a fixed version do not block.
    pub ignore_unfixed: bool,
    /// A CycloneDX SBOM (syft) for every published image.
    pub sbom: bool,
    /// Every base image must be pinned by digest (`cargo xtask pin-bases` does it).
    pub pinned_bases: bool,
    pub allow: Vec<Allowed>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            scanner: Scanner::Trivy,
            fail_on: Severity::High,
            ignore_unfixed: false,
            sbom: true,
            pinned_bases: false,
            allow: Vec::new(),
        }
    }
}

/// Why a finding does or does not block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Verdict {
    Blocks,
    /// Blocking severity, but an allowlist entry past its date does not cover it any more.
    BlocksAllowExpired(String),
    Allowed(String),
    BelowThreshold,
    Unfixed,
}

/// The gate, purely: each finding with its verdict. `today` is `YYYY-MM-DD`.
pub fn judge(findings: &[Finding], policy: &Policy, today: &str) -> Vec<(Finding, Verdict)> {
    findings
        .iter()
        .map(|finding| {
            let verdict = if finding.severity < policy.fail_on {
                Verdict::BelowThreshold
            } else if policy.ignore_unfixed && finding.fixed.is_none() {
                Verdict::Unfixed
            } else {
                match policy.allow.iter().find(|allowed| allowed.id == finding.id) {
                    Some(allowed) if allowed.expires.as_str() >= today => Verdict::Allowed(allowed.reason.clone()),
                    Some(allowed) => Verdict::BlocksAllowExpired(allowed.expires.clone()),
                    None => Verdict::Blocks,
                }
            };
            (finding.clone(), verdict)
        })
        .collect()
}

pub fn blocks(verdict: &Verdict) -> bool {
    matches!(verdict, Verdict::Blocks | Verdict::BlocksAllowExpired(_))
}

/// The text that names each blocking finding and how to accept a risk.
pub fn explain(judged: &[(Finding, Verdict)], policy: &Policy) -> String {
    let mut lines = Vec::new();
    for (finding, verdict) in judged.iter().filter(|(_, verdict)| blocks(verdict)) {
        let fix = finding.fixed.as_deref().map_or("no fixed version".to_string(), |fixed| format!("fixed in {fixed}"));
        let expired = match verdict {
            Verdict::BlocksAllowExpired(date) => format!("; its allowlist entry expired on {date}"),
            _ => String::new(),
        };
        lines.push(format!(
            "  {} {} in {} {} ({fix}) [{}]{expired}",
            finding.severity, finding.id, finding.package, finding.installed, finding.target
        ));
    }
    format!(
        "{}\nfix them (update the base image or the package), or accept a risk in services/services.toml with a reason and an expiry date:\n  [[scan.allow]]\n  id = \"{}\"\n  reason = \"why this finding does not apply\"\n  expires = \"YYYY-MM-DD\"\n(the gate fails on {} and above{})",
        lines.join("\n"),
        judged.iter().find(|(_, verdict)| blocks(verdict)).map_or("CVE-...", |(finding, _)| finding.id.as_str()),
        policy.fail_on,
        if policy.ignore_unfixed { "; unfixed findings do not count" } else { "" }
    )
}

/// Base images of a Dockerfile that are not pinned by digest.
pub fn unpinned_bases(text: &str) -> Vec<String> {
    crate::dockerfile::base_images(text)
        .into_iter()
        .filter(|base| {
            !base.contains('$') && crate::reference::ImageRef::parse(base).map_or(true, |image| image.digest.is_none())
        })
        .collect()
}

/// The final stage of a Dockerfile must run as a numeric, non-root user, and no stage may use
/// a `latest` or untagged base. Each problem says why.
pub fn check_dockerfile(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut last_user: Option<String> = None;
    let mut stages: Vec<String> = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(instruction) = words.next() else { continue };
        if instruction.eq_ignore_ascii_case("FROM") {
            last_user = None;
            let rest: Vec<&str> = words.filter(|word| !word.starts_with("--")).collect();
            if let Some(image) = rest.first() {
                let is_stage = stages.iter().any(|stage| stage.eq_ignore_ascii_case(image))
                    || *image == "scratch"
                    || image.contains('$');
                if !is_stage {
                    match crate::reference::ImageRef::parse(image) {
                        Ok(reference) if reference.digest.is_none() && reference.tag.is_none() => {
                            problems.push(format!("`FROM {image}` has no tag, which means `latest`: pin a version"))
                        }
                        Ok(reference) if reference.tag.as_deref() == Some("latest") && reference.digest.is_none() => {
                            problems.push(format!("`FROM {image}` uses `latest`: pin a version"))
                        }
                        _ => {}
                    }
                }
                if let [_, as_word, name, ..] = rest.as_slice() {
                    if as_word.eq_ignore_ascii_case("AS") {
                        stages.push(name.to_string());
                    }
                }
            }
        } else if instruction.eq_ignore_ascii_case("USER") {
            last_user = words.next().map(str::to_string);
        }
    }
    match last_user.as_deref() {
        None => problems.push("the final stage has no USER, so the image runs as root: add `USER 1001:1001`".into()),
        Some(user) => {
            let uid = user.split(':').next().unwrap_or_default();
            match uid.parse::<u32>() {
                Ok(0) => problems.push(format!("the final stage runs as root (`USER {user}`): use `USER 1001:1001`")),
                Ok(_) => {}
                Err(_) if uid.eq_ignore_ascii_case("root") => problems.push(format!("the final stage runs as root (`USER {user}`): use `USER 1001:1001`")),
                Err(_) => problems.push(format!("`USER {user}` is a name: Kubernetes runAsNonRoot can only verify a numeric user; use `USER 1001:1001`")),
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests;
