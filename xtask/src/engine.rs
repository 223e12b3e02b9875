//! The container engine and its buildx builder: what they can do, read from `docker` itself.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::manifest::Platform;
use crate::process::Cmd;

/// What the builder can do: decides between one multi-platform build and one build per platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    pub builder: String,
    /// `docker`, `docker-container`, `remote`, `kubernetes`.
    pub driver: String,
    /// Platforms the builder can target, native first (as `buildx inspect` lists them).
    pub platforms: Vec<String>,
    /// The engine's own platform.
    pub native: String,
    /// The engine stores images in containerd, which holds multi-platform images.
    pub containerd_store: bool,
}

impl Capabilities {
    pub fn can_target(&self, platform: Platform) -> bool {
        self.platforms.iter().any(|listed| listed == platform.as_str())
    }

    /// One `buildx build --platform a,b` works: any driver but `docker`, or `docker` on the
    /// containerd image store (the classic store holds one platform per image).
    pub fn multi_platform_build(&self) -> bool {
        self.driver != "docker" || self.containerd_store
    }

    /// A multi-platform result can be loaded into the local engine.
    pub fn multi_platform_load(&self) -> bool {
        self.driver == "docker" && self.containerd_store
    }

    /// The engine's platform, if it is one the naming rule knows.
    pub fn native_platform(&self) -> Option<Platform> {
        Platform::parse(&self.native)
    }
}

/// The docker CLI (found on PATH; `cargo xtask doctor` says what to install when it is not).
pub fn docker() -> Cmd {
    Cmd::new("docker")
}

pub fn detect(root: &Path, builder: Option<&str>) -> anyhow::Result<Capabilities> {
    let native = docker()
        .args(["version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"])
        .read(root)
        .context("reach the Docker engine (start it, or run scripts/provision.sh on a fresh machine)")?;
    let mut inspect = docker().args(["buildx", "inspect"]);
    if let Some(builder) = builder {
        inspect = inspect.args(["--builder", builder]);
    }
    let inspect = inspect
        .read(root)
        .context("inspect the buildx builder (is docker-buildx installed? `cargo xtask doctor` checks)")?;
    let driver_status = docker()
        .args(["info", "--format", "{{json .DriverStatus}}"])
        .read(root)
        .context("read the engine's storage driver")?;
    let (builder, driver, platforms) = parse_buildx_inspect(&inspect);
    Ok(Capabilities {
        builder,
        driver,
        platforms,
        native,
        containerd_store: driver_status.contains("io.containerd.snapshotter"),
    })
}

/// Name, driver and platforms from `docker buildx inspect` (the first node's platforms).
pub fn parse_buildx_inspect(text: &str) -> (String, String, Vec<String>) {
    let field = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key).map(|rest| rest.trim_start_matches(':').trim().to_string()))
            .unwrap_or_default()
    };
    let platforms = field("Platforms")
        .split(',')
        .map(|platform| platform.trim().trim_end_matches('*').to_string())
        .filter(|platform| !platform.is_empty())
        .collect();
    (field("Name"), field("Driver"), platforms)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded from `docker buildx inspect` on Engine 26.1.5 with buildx 0.13.1 and QEMU.
    const DOCKER_DRIVER: &str = "Name:          default
Driver:        docker
Last Activity: 2026-12-04 15:47:45 +0000 UTC

Nodes:
Name:             default
Endpoint:         default
Status:           running
BuildKit version: v0.0.0+unknown
Platforms:        linux/amd64, linux/amd64/v2, linux/amd64/v3, linux/amd64/v4, linux/arm64
Labels:
 org.mobyproject.buildkit.worker.executor:             containerd
";

    #[test]
    fn reads_builder_driver_and_platforms() {
        let (name, driver, platforms) = parse_buildx_inspect(DOCKER_DRIVER);
        assert_eq!((name.as_str(), driver.as_str()), ("default", "docker"));
        assert_eq!(platforms.last().map(String::as_str), Some("linux/arm64"));
        assert_eq!(platforms.len(), 5);
    }

    #[test]
    fn classic_store_builds_and_loads_one_platform_at_a_time() {
        let (builder, driver, platforms) = parse_buildx_inspect(DOCKER_DRIVER);
        let mut capabilities =
            Capabilities { builder, driver, platforms, native: "linux/amd64".into(), containerd_store: false };
        assert!(!capabilities.multi_platform_build());
        capabilities.containerd_store = true;
        assert!(capabilities.multi_platform_build() && capabilities.multi_platform_load());
        capabilities.driver = "docker-container".into();
        assert!(capabilities.multi_platform_build() && !capabilities.multi_platform_load());
        assert!(capabilities.can_target(Platform::LinuxArm64));
    }
}
