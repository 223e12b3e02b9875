//! `cargo xtask verify`: answers the guide's two troubleshooting questions (R14) from the
//! registry: does the image exist, and does it hold every architecture, with each per-arch
//! tag equal to the index's image for that architecture and a numeric non-root user.

use serde::Serialize;

use crate::manifest::Platform;
use crate::registry::Client;
use crate::registry::oci::{self, ImageConfig};
use crate::tags::{self, ReleaseVersion};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub image: String,
    pub exists: bool,
    /// Platforms the index holds (attestations left out).
    pub platforms: Vec<String>,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub ok: bool,
    pub what: String,
    /// What to do when it is not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.exists && self.checks.iter().all(|check| check.ok)
    }
}

fn pass(what: String) -> Check {
    Check { ok: true, what, fix: None }
}

fn fail(what: String, fix: impl Into<String>) -> Check {
    Check { ok: false, what, fix: Some(fix.into()) }
}

pub fn verify(
    client: &Client,
    repository_path: &str,
    version: &ReleaseVersion,
    platforms: &[Platform],
) -> anyhow::Result<Report> {
    let image = format!("{}/{repository_path}:{version}", client.host);
    let mut report = Report { image: image.clone(), exists: false, platforms: Vec::new(), checks: Vec::new() };
    let Some(index) = client.get_manifest(repository_path, &version.to_string())? else {
        let mut released: Vec<ReleaseVersion> =
            client.list_tags(repository_path)?.iter().filter_map(|tag| tags::release_version_of(tag)).collect();
        released.sort_by(|a, b| a.precedence(b));
        released.dedup();
        let known = if released.is_empty() {
            format!(
                "{}/{repository_path} has no release tags at all: check the registry, organization and service name",
                client.host
            )
        } else {
            format!(
                "released versions there: {}",
                released.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            )
        };
        report.checks.push(fail(format!("image not found: {image} does not exist"), known));
        return Ok(report);
    };
    report.exists = true;
    if !index.is_index() {
        report.checks.push(fail(
            format!("{image} is a single-platform image, not a multi-arch index"),
            "publish it again from a multi-platform build (`cargo xtask build --push --platform linux/amd64,linux/arm64`, then `cargo xtask publish`)",
        ));
        return Ok(report);
    }
    let children = oci::platform_children(&index.index()?)
        .into_iter()
        .map(|(platform, descriptor)| (platform, descriptor.digest.clone()))
        .collect::<Vec<_>>();
    report.platforms = children.iter().map(|(platform, _)| platform.to_string()).collect();
    for platform in platforms {
        let Some((_, child_digest)) = children.iter().find(|(child, _)| child == platform) else {
            report.checks.push(fail(
                format!(
                    "architecture mismatch: the index {image} has no {platform} image (it holds {})",
                    report.platforms.join(", ")
                ),
                format!("{} nodes cannot run it: build for every platform and release a new version", platform.arch()),
            ));
            continue;
        };
        report.checks.push(pass(format!("the index holds {platform} ({child_digest})")));
        let arch_tag = format!("{version}-{}", platform.arch());
        match client.head_manifest(repository_path, &arch_tag)? {
            Some(digest) if digest == *child_digest => report.checks.push(pass(format!("{arch_tag} is the index's {platform} image"))),
            Some(digest) => report.checks.push(fail(
                format!("{arch_tag} points at {digest}, but the index's {platform} image is {child_digest}"),
                "the per-arch tag was changed by hand: pull the index tag, not an arch tag, and republish the version's tags",
            )),
            None => report.checks.push(fail(format!("{arch_tag} does not exist"), "publish the version again (`cargo xtask publish`): it adds missing tags")),
        }
        let child = client
            .get_manifest(repository_path, child_digest)?
            .ok_or_else(|| anyhow::anyhow!("{repository_path}@{child_digest} is listed in the index but missing"))?;
        let config: ImageConfig = client.get_blob_json(repository_path, &child.image()?.config.digest)?;
        report.checks.push(user_check(platform, &config.config.user));
    }
    Ok(report)
}

/// The user must be numeric (Kubernetes `runAsNonRoot` can only verify a number) and not 0.
pub fn user_check(platform: &Platform, user: &str) -> Check {
    let uid = user.split(':').next().unwrap_or_default();
    let fix = "set `USER 1001:1001` in the final stage (`cargo xtask dockerfiles` generates it)";
    match uid.parse::<u32>() {
        _ if user.is_empty() => fail(format!("{platform}: no USER, so the image runs as root"), fix),
        Ok(0) => fail(format!("{platform}: runs as root (user `{user}`)"), fix),
        Ok(_) => pass(format!("{platform}: runs as user {user}")),
        Err(_) => fail(format!("{platform}: user `{user}` is a name, which runAsNonRoot cannot verify"), fix),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_must_be_numeric_and_not_root() {
        assert!(user_check(&Platform::LinuxArm64, "1001:1001").ok);
        assert!(user_check(&Platform::LinuxArm64, "1001").ok);
        assert!(user_check(&Platform::LinuxArm64, "").what.contains("no USER"));
        assert!(user_check(&Platform::LinuxArm64, "0:0").what.contains("runs as root"));
        assert!(user_check(&Platform::LinuxArm64, "root").what.contains("is a name"));
        assert!(user_check(&Platform::LinuxArm64, "node").what.contains("is a name"));
    }
}
