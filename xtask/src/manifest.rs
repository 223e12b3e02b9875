//! The services manifest (`services/services.toml`): its model, parsing, and every rule a
//! manifest must follow. Each problem names the file, line and key, and says how to fix it.

use std::fmt;
use std::path::{Component, Path};

use serde::Deserialize;
use toml::Spanned;

use crate::error::BadInput;
use crate::reference::{self, ImageRef};

/// Where the manifest lives, relative to the repository root.
pub const MANIFEST_PATH: &str = "services/services.toml";

#[derive(Debug, Clone)]
pub struct Manifest {
    pub project: Project,
    pub registry: Registry,
    pub release: Release,
    pub services: Vec<Service>,
    /// The scan gate (`[scan]`); on, with Trivy, when the table is absent.
    pub scan: crate::scan::Policy,
    /// The retention policy (`[retention]`), the guide's numbers by default.
    pub retention: crate::retention::Policy,
}

#[derive(Debug, Clone)]
pub struct Project {
    /// Source repository URL (`org.opencontainers.image.source`).
    pub source: String,
    /// SPDX license expression (`org.opencontainers.image.licenses`).
    pub license: String,
}

#[derive(Debug, Clone)]
pub struct Registry {
    pub host: String,
    pub organization: String,
}

impl Registry {
    /// This registry with `--registry` / `--organization` applied.
    pub fn with_overrides(&self, host: Option<&str>, organization: Option<&str>) -> Registry {
        Registry {
            host: host.unwrap_or(&self.host).to_string(),
            organization: organization.unwrap_or(&self.organization).to_string(),
        }
    }

    /// The repository path inside the registry: `battlescope/frontend`.
    pub fn path(&self, service: &str) -> String {
        format!("{}/{service}", self.organization)
    }

    /// The full repository: `docker.io/battlescope/frontend`.
    pub fn repository(&self, service: &str) -> String {
        format!("{}/{}", self.host, self.path(service))
    }
}

#[derive(Debug, Clone)]
pub struct Release {
    pub version: semver::Version,
    pub platforms: Vec<Platform>,
}

/// The platforms the naming rule (R1) knows: each gives the `-<arch>` tag suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Platform {
    LinuxAmd64,
    LinuxArm64,
}

impl Platform {
    pub const ALL: [Platform; 2] = [Platform::LinuxAmd64, Platform::LinuxArm64];

    pub fn parse(text: &str) -> Option<Platform> {
        Platform::ALL.into_iter().find(|platform| platform.as_str() == text)
    }

    /// As buildx and OCI indexes spell it: `linux/amd64`.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::LinuxAmd64 => "linux/amd64",
            Platform::LinuxArm64 => "linux/arm64",
        }
    }

    /// The architecture, as used in per-arch tags: `amd64`.
    pub fn arch(self) -> &'static str {
        match self {
            Platform::LinuxAmd64 => "amd64",
            Platform::LinuxArm64 => "arm64",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A Node.js service: `npm ci` on the build platform, `node <main>` at run time.
    Node,
    /// A static site served by busybox httpd.
    Static,
    /// A Rust binary built with cargo.
    Rust,
    /// A hand-written `docker/<name>.Dockerfile`, left as it is.
    Dockerfile,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Node => "node",
            Kind::Static => "static",
            Kind::Rust => "rust",
            Kind::Dockerfile => "dockerfile",
        }
    }

    /// The runtime base image when the manifest names none (R10: official, LTS, never latest).
    fn default_base(self) -> Option<&'static str> {
        match self {
            Kind::Node => Some("node:20-alpine"),
            Kind::Static => Some("busybox:1.36"),
            Kind::Rust => Some("debian:bookworm-slim"),
            Kind::Dockerfile => None,
        }
    }

    /// The build-stage base image when the manifest names none.
    fn default_build_base(self, base: &str) -> Option<String> {
        match self {
            Kind::Node | Kind::Static => Some(base.to_string()),
            Kind::Rust => Some("rust:1.95-slim-bookworm".to_string()),
            Kind::Dockerfile => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub description: String,
    pub kind: Kind,
    /// Build context, relative to the repository root.
    pub path: String,
    pub port: u16,
    pub health: String,
    #[allow(dead_code, reason = "validated now; the release edits these files")]
    pub kubernetes: Vec<String>,
    pub env: Vec<EnvVar>,
    /// Runtime base image as written (`node:20-alpine`); `None` for a hand-written Dockerfile.
    pub base: Option<String>,
    /// Build-stage base image as written.
    pub build_base: Option<String>,
    /// Node.js entry point, relative to `path`.
    pub main: String,
    /// Its npm packages build native add-ons, so `npm ci` must run on the target platform
    /// (under QEMU for a foreign one) and with install scripts.
    pub native_addons: bool,
}

impl Service {
    /// The committed Dockerfile this service is built from.
    pub fn dockerfile_path(&self) -> String {
        format!("docker/{}.Dockerfile", self.name)
    }
}

#[derive(Debug, Clone)]
#[allow(dead_code, reason = "description and required are validated now; the registry README shows them")]
pub struct EnvVar {
    pub name: String,
    pub description: String,
    pub default: Option<String>,
    pub required: bool,
}

impl Manifest {
    /// Reads and validates `services/services.toml` under `root`, checking that every path it
    /// names exists. Any problem is a [`BadInput`] listing all of them.
    pub fn load(root: &Path) -> anyhow::Result<Manifest> {
        let file = root.join(MANIFEST_PATH);
        let text = std::fs::read_to_string(&file)
            .map_err(|error| BadInput(format!("{MANIFEST_PATH}: cannot read the services manifest: {error}")))?;
        Manifest::parse(&text, MANIFEST_PATH, Some(root)).map_err(|error| BadInput(error.to_string()).into())
    }

    /// Parses and validates manifest text. With `root`, paths must also exist under it.
    pub fn parse(text: &str, file: &str, root: Option<&Path>) -> Result<Manifest, ManifestError> {
        let raw: RawManifest = toml::from_str(text).map_err(|error| {
            let line = error.span().map_or(1, |span| line_of(text, span.start));
            let key = parse_error_key(error.message(), text.lines().nth(line - 1).unwrap_or(""));
            let fix = if error.message().starts_with("unknown field") {
                "remove the key or correct its spelling (README.md lists every key)"
            } else if error.message().starts_with("missing field") {
                "add the key (README.md lists every key)"
            } else {
                "correct the value (README.md lists every key and its type)"
            };
            ManifestError::single(
                file,
                Problem { line, key, message: error.message().trim().to_string(), fix: fix.into() },
            )
        })?;
        let mut check = Checker { text, problems: Vec::new(), root };
        let manifest = check.manifest(raw);
        if check.problems.is_empty() {
            Ok(manifest)
        } else {
            Err(ManifestError { file: file.to_string(), problems: check.problems })
        }
    }

    /// The services named by `--service` (all when none), in manifest order; an unknown name is
    /// bad input that lists the known ones.
    pub fn select(&self, names: &[String]) -> anyhow::Result<Vec<&Service>> {
        for name in names {
            if !self.services.iter().any(|service| &service.name == name) {
                let known: Vec<&str> = self.services.iter().map(|service| service.name.as_str()).collect();
                return Err(crate::error::bad_input(format!(
                    "unknown service `{name}`: {MANIFEST_PATH} has {}",
                    known.join(", ")
                )));
            }
        }
        Ok(self.services.iter().filter(|service| names.is_empty() || names.contains(&service.name)).collect())
    }
}

/// The manifest text with `[release] version` set to `version`: only that string changes.
pub fn with_version(text: &str, version: &semver::Version) -> anyhow::Result<String> {
    #[derive(Deserialize)]
    struct Versioned {
        release: VersionedRelease,
    }
    #[derive(Deserialize)]
    struct VersionedRelease {
        version: Spanned<String>,
    }
    let parsed: Versioned =
        toml::from_str(text).map_err(|error| BadInput(format!("{MANIFEST_PATH}: {}", error.message())))?;
    let span = parsed.release.version.span();
    Ok(format!("{}\"{version}\"{}", &text[..span.start], &text[span.end..]))
}

/// A base image pinned by `cargo xtask pin-bases`: which service, which key, the new value.
pub struct Pin {
    pub service: String,
    /// `base` or `build_base`.
    pub key: &'static str,
    pub value: String,
}

/// The manifest text with each pin written: an existing key's string is replaced; a missing
/// key (a kind's default base) gets its own line under the service's `kind`. Nothing else
/// changes.
pub fn with_pins(text: &str, pins: &[Pin]) -> anyhow::Result<String> {
    #[derive(Deserialize)]
    struct Pinned {
        #[serde(default)]
        service: Vec<PinnedService>,
    }
    #[derive(Deserialize)]
    struct PinnedService {
        name: String,
        kind: Spanned<toml::Value>,
        base: Option<Spanned<String>>,
        build_base: Option<Spanned<String>>,
    }
    let parsed: Pinned =
        toml::from_str(text).map_err(|error| BadInput(format!("{MANIFEST_PATH}: {}", error.message())))?;
    // (byte offset, bytes to remove, text to insert), applied from the end backwards.
    let mut splices: Vec<(usize, usize, String)> = Vec::new();
    for pin in pins {
        let service = parsed
            .service
            .iter()
            .find(|service| service.name == pin.service)
            .ok_or_else(|| anyhow::anyhow!("no service `{}`", pin.service))?;
        let existing = if pin.key == "base" { &service.base } else { &service.build_base };
        match existing {
            Some(value) => splices.push((value.span().start, value.span().len(), format!("\"{}\"", pin.value))),
            None => {
                let line_end = text[service.kind.span().end..]
                    .find('\n')
                    .map_or(text.len(), |offset| service.kind.span().end + offset + 1);
                splices.push((line_end, 0, format!("{} = \"{}\"\n", pin.key, pin.value)));
            }
        }
    }
    splices.sort_by_key(|(offset, _, _)| std::cmp::Reverse(*offset));
    let mut out = text.to_string();
    for (offset, length, insert) in splices {
        out.replace_range(offset..offset + length, &insert);
    }
    Ok(out)
}

/// Every problem found in one manifest.
#[derive(Debug)]
pub struct ManifestError {
    pub file: String,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub key: String,
    pub message: String,
    pub fix: String,
}

impl ManifestError {
    fn single(file: &str, problem: Problem) -> ManifestError {
        ManifestError { file: file.to_string(), problems: vec![problem] }
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        write!(f, "{} has {count} problem{}", self.file, if count == 1 { "" } else { "s" })?;
        for problem in &self.problems {
            write!(
                f,
                "\n  {}:{}: {}: {}\n    fix: {}",
                self.file, problem.line, problem.key, problem.message, problem.fix
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestError {}

/// The key a TOML error is about: the one a missing-field message names, else the key written
/// on the offending line.
fn parse_error_key(message: &str, line: &str) -> String {
    let named = message.split('`').nth(1).unwrap_or_default();
    let written = line.split_once('=').map(|(key, _)| key.trim());
    match written {
        Some(key) if !message.starts_with("missing field") => format!("key `{key}`"),
        _ => format!("key `{named}`"),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

// The file as written: every value that a rule checks keeps its position for the message.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    project: RawProject,
    registry: RawRegistry,
    release: RawRelease,
    #[serde(default)]
    service: Vec<Spanned<RawService>>,
    scan: Option<RawScan>,
    retention: Option<RawRetention>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    minors: Option<Spanned<i64>>,
    patches: Option<Spanned<i64>>,
    dev_max_age_days: Option<Spanned<i64>>,
    dev_pattern: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScan {
    scanner: Option<Spanned<crate::scan::Scanner>>,
    fail_on: Option<Spanned<String>>,
    ignore_unfixed: Option<bool>,
    sbom: Option<bool>,
    pinned_bases: Option<bool>,
    #[serde(default)]
    allow: Vec<Spanned<RawAllow>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllow {
    id: Spanned<String>,
    reason: Spanned<String>,
    expires: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProject {
    source: Spanned<String>,
    license: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    host: Spanned<String>,
    organization: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelease {
    version: Spanned<String>,
    platforms: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: Spanned<String>,
    description: Spanned<String>,
    kind: Spanned<Kind>,
    path: Spanned<String>,
    port: Spanned<i64>,
    health: Option<Spanned<String>>,
    #[serde(default)]
    kubernetes: Vec<Spanned<String>>,
    #[serde(default)]
    env: Vec<Spanned<RawEnv>>,
    base: Option<Spanned<String>>,
    build_base: Option<Spanned<String>>,
    main: Option<Spanned<String>>,
    native_addons: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnv {
    name: Spanned<String>,
    description: Spanned<String>,
    default: Option<Spanned<String>>,
    #[serde(default)]
    required: bool,
}

/// Applies the rules to the raw file, collecting every problem rather than stopping at the first.
struct Checker<'a> {
    text: &'a str,
    problems: Vec<Problem>,
    root: Option<&'a Path>,
}

impl Checker<'_> {
    fn problem<T>(
        &mut self,
        at: &Spanned<T>,
        key: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.problems.push(Problem {
            line: line_of(self.text, at.span().start),
            key: key.into(),
            message: message.into(),
            fix: fix.into(),
        });
    }

    fn manifest(&mut self, raw: RawManifest) -> Manifest {
        let project = Project {
            source: self.one_line(&raw.project.source, "key `project.source`"),
            license: self.one_line(&raw.project.license, "key `project.license`"),
        };
        if !project.source.starts_with("https://") {
            self.problem(
                &raw.project.source,
                "key `project.source`",
                format!("`{}` is not an https URL", project.source),
                "give the repository's https URL",
            );
        }
        let registry = self.registry(&raw.registry);
        let release = self.release(&raw.release);
        let mut services: Vec<Service> = Vec::new();
        for raw_service in &raw.service {
            let service = self.service(raw_service);
            if services.iter().any(|earlier| earlier.name == service.name) {
                self.problem(
                    &raw_service.get_ref().name,
                    "name",
                    format!("service name `{}` is used twice", service.name),
                    "give each service its own name",
                );
            }
            services.push(service);
        }
        if raw.service.is_empty() {
            self.problems.push(Problem {
                line: 1,
                key: "service".into(),
                message: "no [[service]] is declared".into(),
                fix: "add a [[service]] table (README.md shows one)".into(),
            });
        }
        let scan = raw.scan.map(|scan| self.scan(scan)).unwrap_or_default();
        let retention = raw.retention.map(|retention| self.retention(retention)).unwrap_or_default();
        Manifest { project, registry, release, services, scan, retention }
    }

    fn retention(&mut self, raw: RawRetention) -> crate::retention::Policy {
        let defaults = crate::retention::Policy::default();
        let mut count = |value: &Option<Spanned<i64>>, key: &str, default: usize| match value {
            Some(number) if *number.get_ref() >= 1 => *number.get_ref() as usize,
            Some(number) => {
                self.problem(
                    number,
                    format!("key `retention.{key}`"),
                    format!("{} keeps nothing", number.get_ref()),
                    "use a number of at least 1",
                );
                default
            }
            None => default,
        };
        let minors = count(&raw.minors, "minors", defaults.minors);
        let patches = count(&raw.patches, "patches", defaults.patches);
        let dev_max_age_days =
            count(&raw.dev_max_age_days, "dev_max_age_days", defaults.dev_max_age_days as usize) as u64;
        let dev_pattern = match &raw.dev_pattern {
            Some(pattern) if !pattern.get_ref().is_empty() => pattern.get_ref().clone(),
            Some(pattern) => {
                self.problem(
                    pattern,
                    "key `retention.dev_pattern`",
                    "is empty, so every tag would be a dev tag",
                    "use the marker of dev tags, `-dev-`",
                );
                defaults.dev_pattern.clone()
            }
            None => defaults.dev_pattern.clone(),
        };
        crate::retention::Policy { minors, patches, dev_max_age_days, dev_pattern }
    }

    fn scan(&mut self, raw: RawScan) -> crate::scan::Policy {
        let defaults = crate::scan::Policy::default();
        let fail_on = match &raw.fail_on {
            Some(text) => crate::scan::Severity::parse(text.get_ref()).unwrap_or_else(|| {
                self.problem(
                    text,
                    "key `scan.fail_on`",
                    format!("unknown severity `{}`", text.get_ref()),
                    "use low, medium, high or critical",
                );
                defaults.fail_on
            }),
            None => defaults.fail_on,
        };
        let mut allow = Vec::new();
        for entry in &raw.allow {
            let entry = entry.get_ref();
            let id = entry.id.get_ref().clone();
            let key = format!("scan.allow `{id}`");
            let reason = self.one_line(&entry.reason, &key);
            let expires = entry.expires.get_ref().clone();
            let is_date = expires.len() == 10
                && expires
                    .bytes()
                    .enumerate()
                    .all(|(index, b)| if index == 4 || index == 7 { b == b'-' } else { b.is_ascii_digit() });
            if !is_date {
                self.problem(
                    &entry.expires,
                    &key,
                    format!("expires `{expires}` is not a date"),
                    "write it as YYYY-MM-DD: every accepted risk has an end",
                );
            }
            if id.trim().is_empty() {
                self.problem(
                    &entry.id,
                    "key `scan.allow.id`",
                    "is empty",
                    "name the finding, for example `CVE-2024-12345`",
                );
            }
            allow.push(crate::scan::Allowed { id, reason, expires });
        }
        crate::scan::Policy {
            scanner: raw.scanner.map_or(defaults.scanner, |scanner| *scanner.get_ref()),
            fail_on,
            ignore_unfixed: raw.ignore_unfixed.unwrap_or(defaults.ignore_unfixed),
            sbom: raw.sbom.unwrap_or(defaults.sbom),
            pinned_bases: raw.pinned_bases.unwrap_or(defaults.pinned_bases),
            allow,
        }
    }

    fn registry(&mut self, raw: &RawRegistry) -> Registry {
        if let Err(message) = reference::validate_registry_host(raw.host.get_ref()) {
            self.problem(&raw.host, "key `registry.host`", message, "use a host such as `docker.io` or `ghcr.io`");
        }
        let organization = raw.organization.get_ref();
        if organization.contains('/') || reference::validate_repository(organization).is_err() {
            self.problem(
                &raw.organization,
                "key `registry.organization`",
                format!("`{organization}` is not a lowercase organization name"),
                "use lowercase letters, digits and single '-', '_' or '.' (for example `battlescope`)",
            );
        }
        Registry { host: raw.host.get_ref().clone(), organization: organization.clone() }
    }

    fn release(&mut self, raw: &RawRelease) -> Release {
        let text = raw.version.get_ref();
        let version = match semver::Version::parse(text) {
            Ok(version) if version.build.is_empty() => version,
            Ok(_) => {
                self.problem(
                    &raw.version,
                    "key `release.version`",
                    format!("`{text}` has build metadata, which image tags cannot carry"),
                    "remove the `+...` part",
                );
                semver::Version::new(0, 0, 0)
            }
            Err(error) => {
                let hint = if text.starts_with('v') {
                    "write it without the leading `v` (the `v` is added to tags)"
                } else {
                    "write MAJOR.MINOR.PATCH, for example `3.0.0`"
                };
                self.problem(
                    &raw.version,
                    "key `release.version`",
                    format!("`{text}` is not a semantic version: {error}"),
                    hint,
                );
                semver::Version::new(0, 0, 0)
            }
        };
        let mut platforms = Vec::new();
        for entry in raw.platforms.get_ref() {
            match Platform::parse(entry.get_ref()) {
                Some(platform) if platforms.contains(&platform) => self.problem(
                    entry,
                    "key `release.platforms`",
                    format!("`{platform}` is listed twice"),
                    "list each platform once",
                ),
                Some(platform) => platforms.push(platform),
                None => self.problem(
                    entry,
                    "key `release.platforms`",
                    format!("unknown platform `{}`", entry.get_ref()),
                    "use `linux/amd64` and/or `linux/arm64` (the architectures of the naming rule)",
                ),
            }
        }
        if raw.platforms.get_ref().is_empty() {
            self.problem(
                &raw.platforms,
                "key `release.platforms`",
                "no platform is listed",
                "list `linux/amd64` and `linux/arm64`",
            );
        }
        Release { version, platforms }
    }

    fn service(&mut self, raw: &Spanned<RawService>) -> Service {
        let raw = raw.get_ref();
        let name = raw.name.get_ref().clone();
        if !is_kebab_case(&name) || name.len() > 63 {
            self.problem(&raw.name, "key `name`", format!("service name `{name}` is not kebab-case"), "use lowercase words joined by single hyphens, starting with a letter, at most 63 characters (for example `battle-service`)");
        }
        let key = |key: &str| format!("service `{name}`, key `{key}`");
        let description = self.one_line(&raw.description, &key("description"));
        let kind = *raw.kind.get_ref();
        let path = self.relative_path(&raw.path, &key("path"), PathKind::Directory);
        let port = match u16::try_from(*raw.port.get_ref()) {
            Ok(port) if port >= 1024 => port,
            Ok(port) if port >= 1 => {
                self.problem(
                    &raw.port,
                    key("port"),
                    format!("port {port} is privileged: the service runs as uid 1001 and cannot bind it"),
                    "use a port from 1024 to 65535 (for example 3000 or 8080)",
                );
                port
            }
            _ => {
                self.problem(
                    &raw.port,
                    key("port"),
                    format!("port {} is out of range", raw.port.get_ref()),
                    "use a port from 1024 to 65535",
                );
                0
            }
        };
        let health = match &raw.health {
            Some(health) => {
                let text = health.get_ref();
                let valid = text.starts_with('/')
                    && !text.contains("..")
                    && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b));
                if !valid {
                    self.problem(
                        health,
                        key("health"),
                        format!("`{text}` is not a plain URL path"),
                        "use an absolute path of letters, digits, '/', '-', '_' and '.', for example `/health`",
                    );
                }
                text.clone()
            }
            None => "/health".to_string(),
        };
        let kubernetes =
            raw.kubernetes.iter().map(|entry| self.relative_path(entry, &key("kubernetes"), PathKind::File)).collect();
        let env = self.env(&raw.env, &name);
        let base = match &raw.base {
            Some(base) => Some(self.base_image(base, &key("base"))),
            None => kind.default_base().map(str::to_string),
        };
        let build_base = match &raw.build_base {
            Some(build_base) => Some(self.base_image(build_base, &key("build_base"))),
            None => base.as_deref().and_then(|base| kind.default_build_base(base)),
        };
        if kind == Kind::Dockerfile {
            for (given, which) in [(&raw.base, "base"), (&raw.build_base, "build_base")] {
                if let Some(given) = given {
                    self.problem(
                        given,
                        key(which),
                        "a hand-written Dockerfile names its own base images",
                        format!("remove `{which}` or change `kind`"),
                    );
                }
            }
        }
        let main = match &raw.main {
            Some(main) => {
                if kind != Kind::Node {
                    self.problem(
                        main,
                        key("main"),
                        format!("`main` only applies to kind `node`, not `{}`", kind.as_str()),
                        "remove `main`",
                    );
                }
                let joined = Spanned::new(main.span(), format!("{}/{}", raw.path.get_ref(), main.get_ref()));
                self.relative_path(&joined, &key("main"), PathKind::File);
                main.get_ref().clone()
            }
            None => "src/index.js".to_string(),
        };
        let native_addons = match &raw.native_addons {
            Some(flag) if kind != Kind::Node => {
                self.problem(
                    flag,
                    key("native_addons"),
                    format!("`native_addons` only applies to kind `node`, not `{}`", kind.as_str()),
                    "remove it",
                );
                false
            }
            Some(flag) => *flag.get_ref(),
            None => false,
        };
        Service { name, description, kind, path, port, health, kubernetes, env, base, build_base, main, native_addons }
    }

    fn env(&mut self, raw: &[Spanned<RawEnv>], service: &str) -> Vec<EnvVar> {
        let mut env: Vec<EnvVar> = Vec::new();
        for entry in raw {
            let entry = entry.get_ref();
            let name = entry.name.get_ref().clone();
            let key = format!("service `{service}`, env `{name}`");
            let valid_name = name.bytes().next().is_some_and(|b| b.is_ascii_uppercase() || b == b'_')
                && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            if !valid_name {
                self.problem(
                    &entry.name,
                    &key,
                    format!("`{name}` is not an environment variable name"),
                    "use uppercase letters, digits and '_', for example `DATABASE_URL`",
                );
            } else if name == "PORT" {
                self.problem(
                    &entry.name,
                    &key,
                    "`PORT` comes from the service's `port`",
                    "remove this entry; set `port` instead",
                );
            } else if env.iter().any(|earlier| earlier.name == name) {
                self.problem(&entry.name, &key, format!("`{name}` is listed twice"), "list each variable once");
            }
            let description = self.one_line(&entry.description, &key);
            let default = entry.default.as_ref().map(|default| self.one_line(default, &key));
            match (&default, entry.required) {
                (Some(_), true) => self.problem(
                    &entry.name,
                    &key,
                    "has both a default and `required = true`",
                    "keep one: a required variable has no default",
                ),
                (None, false) => self.problem(
                    &entry.name,
                    &key,
                    "has neither a default nor `required = true`",
                    "add `default = \"...\"` or `required = true`",
                ),
                _ => {}
            }
            env.push(EnvVar { name, description, default, required: entry.required });
        }
        env
    }

    /// A base image: a valid reference with an explicit tag or digest, never `latest` (R10).
    fn base_image(&mut self, raw: &Spanned<String>, key: &str) -> String {
        let text = raw.get_ref();
        match ImageRef::parse(text) {
            Err(message) => self.problem(raw, key, message, "write a reference such as `node:20-alpine`"),
            Ok(image) if image.tag.is_none() && image.digest.is_none() => self.problem(
                raw,
                key,
                format!("`{text}` has no tag, so it means `latest`"),
                "pin a version tag, for example `node:20-alpine`",
            ),
            Ok(image) if image.tag.as_deref() == Some("latest") => self.problem(
                raw,
                key,
                format!("`{text}` uses `latest`, which changes under you"),
                "pin a version tag, for example `node:20-alpine`",
            ),
            Ok(_) => {}
        }
        text.clone()
    }

    /// A path inside the repository: relative, no `..`, and (with a root) existing.
    fn relative_path(&mut self, raw: &Spanned<String>, key: &str, kind: PathKind) -> String {
        let text = raw.get_ref();
        let path = Path::new(text);
        let inside = !text.is_empty()
            && !text.contains('\\')
            && path.components().all(|component| matches!(component, Component::Normal(_) | Component::CurDir));
        if !inside {
            self.problem(
                raw,
                key,
                format!("`{text}` is not a path inside the repository"),
                "use a relative path without `..`, for example `services/frontend`",
            );
        } else if let Some(root) = self.root {
            let full = root.join(path);
            let (exists, what) = match kind {
                PathKind::Directory => (full.is_dir(), "directory"),
                PathKind::File => (full.is_file(), "file"),
            };
            let escapes = full
                .canonicalize()
                .ok()
                .zip(root.canonicalize().ok())
                .is_some_and(|(real, root)| !real.starts_with(root));
            if !exists {
                self.problem(
                    raw,
                    key,
                    format!("{what} `{text}` does not exist"),
                    "create it, or correct the path (relative to the repository root)",
                );
            } else if escapes {
                // The release would read and write through the link, outside the repository.
                self.problem(
                    raw,
                    key,
                    format!("`{text}` leads outside the repository through a symbolic link"),
                    "replace the link with the files themselves",
                );
            }
        }
        text.clone()
    }

    /// Text that ends up in labels, YAML and tables: one line, no control characters.
    fn one_line(&mut self, raw: &Spanned<String>, key: &str) -> String {
        let text = raw.get_ref();
        if text.trim().is_empty() {
            self.problem(raw, key, "is empty", "write a short one-line text");
        } else if text.chars().any(char::is_control) {
            self.problem(raw, key, "contains a line break or control character", "keep it on one line");
        }
        text.clone()
    }
}

#[derive(Clone, Copy)]
enum PathKind {
    Directory,
    File,
}

fn is_kebab_case(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .split('-')
            .all(|word| !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

#[cfg(test)]
mod tests;
