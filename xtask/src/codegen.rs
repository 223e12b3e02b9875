//! Generated files (Dockerfiles, registry docs): written, or checked for staleness with the
//! command that fixes them. `cargo xtask dockerfiles [--check]` lives here.

use std::path::Path;

use anyhow::{Context, bail};

use crate::dockerfile::{self, PREAMBLE, REGENERATE_COMMAND};
use crate::error::bad_input;
use crate::manifest::{Kind, Manifest};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bring the files up to date.
    Write,
    /// Change nothing; fail naming every stale file and the command that fixes it.
    Check,
}

/// What one file should contain (`None`: it is a generated file that should not exist).
#[derive(Debug, PartialEq, Eq)]
pub struct Expected {
    pub path: String,
    pub contents: Option<String>,
}

/// Every generated Dockerfile the manifest implies, plus removals of generated files whose
/// service is gone. `existing` lists the `docker/` files with their contents.
pub fn expected_dockerfiles(manifest: &Manifest, existing: &[(String, String)]) -> Vec<Expected> {
    let mut expected: Vec<Expected> = manifest
        .services
        .iter()
        .filter_map(|service| {
            let contents = dockerfile::render(manifest, service)?;
            Some(Expected { path: service.dockerfile_path(), contents: Some(contents) })
        })
        .collect();
    for (path, contents) in existing {
        let generated = path.ends_with(".Dockerfile") && contents.starts_with(PREAMBLE);
        let owned = manifest.services.iter().any(|service| &service.dockerfile_path() == path);
        if generated && !owned {
            expected.push(Expected { path: path.clone(), contents: None });
        }
    }
    expected
}

/// `cargo xtask dockerfiles`: hand-written Dockerfiles must exist; generated ones must match.
pub fn run(root: &Path, manifest: &Manifest, mode: Mode) -> anyhow::Result<()> {
    for service in manifest.services.iter().filter(|service| service.kind == Kind::Dockerfile) {
        let path = service.dockerfile_path();
        if !root.join(&path).is_file() {
            return Err(bad_input(format!(
                "{path} does not exist: service `{}` has kind = \"dockerfile\", so its Dockerfile is written by hand; write it, or choose a generated kind in services/services.toml",
                service.name
            )));
        }
    }
    let existing = read_files(root, "docker")?;
    ensure(root, &expected_dockerfiles(manifest, &existing), &existing, mode, REGENERATE_COMMAND)
}

/// Brings files to their expected contents (Write) or lists every difference and fails with
/// the command that fixes it (Check). `existing` holds the current files of the family.
pub fn ensure(
    root: &Path,
    expected: &[Expected],
    existing: &[(String, String)],
    mode: Mode,
    command: &str,
) -> anyhow::Result<()> {
    let mut stale = Vec::new();
    for expected in expected {
        let current = existing.iter().find(|(path, _)| *path == expected.path).map(|(_, contents)| contents);
        if current.map(|text| text.replace("\r\n", "\n")) == expected.contents {
            continue;
        }
        let full = root.join(&expected.path);
        match (mode, &expected.contents) {
            (Mode::Check, None) => stale.push(format!("{} (its service is gone: delete it)", expected.path)),
            (Mode::Check, Some(_)) if current.is_none() => stale.push(format!("{} (missing)", expected.path)),
            (Mode::Check, Some(_)) => stale.push(format!("{} (out of date)", expected.path)),
            (Mode::Write, None) => {
                std::fs::remove_file(&full).with_context(|| format!("remove {}", expected.path))?;
                eprintln!("removed {}", expected.path);
            }
            (Mode::Write, Some(contents)) => {
                std::fs::create_dir_all(full.parent().unwrap())
                    .with_context(|| format!("create the folder of {}", expected.path))?;
                std::fs::write(&full, contents).with_context(|| format!("write {}", expected.path))?;
                eprintln!("wrote {}", expected.path);
            }
        }
    }
    if !stale.is_empty() {
        bail!("generated files are stale:\n  {}\nrun `{command}` and commit the result", stale.join("\n  "));
    }
    if mode == Mode::Check {
        eprintln!("generated files are up to date ({} checked)", expected.len());
    }
    Ok(())
}

/// Every file under `directory` (recursively), as repository-relative paths with contents.
pub fn read_files(root: &Path, directory: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    let mut pending = vec![directory.to_string()];
    while let Some(relative) = pending.pop() {
        let full = root.join(&relative);
        if !full.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&full).with_context(|| format!("read {relative}/"))? {
            let entry = entry.with_context(|| format!("read {relative}/"))?;
            let path = format!("{relative}/{}", entry.file_name().to_string_lossy());
            if entry.path().is_dir() {
                pending.push(path);
            } else {
                let contents = std::fs::read_to_string(entry.path()).with_context(|| format!("read {path}"))?;
                files.push((path, contents));
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repository_root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
    }

    /// The committed Dockerfiles match the manifest (`UPDATE_EXPECT=1` rewrites them).
    #[test]
    fn committed_dockerfiles_are_current() {
        let root = repository_root();
        let manifest = Manifest::load(root).unwrap();
        let mode = if std::env::var_os("UPDATE_EXPECT").is_some() { Mode::Write } else { Mode::Check };
        run(root, &manifest, mode).unwrap();
    }

    #[test]
    fn check_names_stale_missing_and_orphaned_files_and_changes_nothing() {
        let root = tempfile::tempdir().unwrap();
        let source = repository_root();
        std::fs::create_dir_all(root.path().join("services")).unwrap();
        std::fs::copy(source.join("services/services.toml"), root.path().join("services/services.toml")).unwrap();
        let manifest = Manifest::parse(
            &std::fs::read_to_string(source.join("services/services.toml")).unwrap(),
            "services.toml",
            None,
        )
        .unwrap();
        run(root.path(), &manifest, Mode::Write).unwrap();
        let frontend = root.path().join("docker/frontend.Dockerfile");
        std::fs::write(&frontend, "FROM busybox:latest\n").unwrap();
        std::fs::remove_file(root.path().join("docker/battle-service.Dockerfile")).unwrap();
        std::fs::write(root.path().join("docker/old-service.Dockerfile"), format!("{PREAMBLE}\nFROM x:1\n")).unwrap();
        std::fs::write(root.path().join("docker/hand.Dockerfile"), "FROM x:1\n").unwrap();

        let message = run(root.path(), &manifest, Mode::Check).unwrap_err().to_string();
        assert!(message.contains("docker/frontend.Dockerfile (out of date)"), "{message}");
        assert!(message.contains("docker/battle-service.Dockerfile (missing)"), "{message}");
        assert!(message.contains("docker/old-service.Dockerfile (its service is gone: delete it)"), "{message}");
        assert!(!message.contains("hand.Dockerfile"), "hand-written files are not ours: {message}");
        assert!(message.contains("run `cargo xtask dockerfiles`"), "{message}");
        assert_eq!(std::fs::read_to_string(&frontend).unwrap(), "FROM busybox:latest\n", "check must not write");

        run(root.path(), &manifest, Mode::Write).unwrap();
        run(root.path(), &manifest, Mode::Check).unwrap();
        assert!(!root.path().join("docker/old-service.Dockerfile").exists());
        assert!(root.path().join("docker/hand.Dockerfile").exists());
    }
}
