//! `cargo xtask pin-bases`: resolves every base image tag of the manifest to the digest the
//! registry (or the base mirror) serves now, and writes `tag@digest` into
//! `services/services.toml` (only those strings change), then regenerates the Dockerfiles.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;

use crate::manifest::{self, Kind, Manifest, Pin};
use crate::reference::ImageRef;
use crate::registry::Client;

pub fn run(root: &Path, manifest: &Manifest, mirror: Option<&str>) -> anyhow::Result<()> {
    let mut resolved: HashMap<String, String> = HashMap::new();
    let mut pins = Vec::new();
    for service in manifest.services.iter().filter(|service| service.kind != Kind::Dockerfile) {
        let follows_base = service.kind != Kind::Rust && service.build_base == service.base;
        let keys = [
            ("base", service.base.as_deref()),
            ("build_base", if follows_base { None } else { service.build_base.as_deref() }),
        ];
        for (key, value) in keys {
            let Some(value) = value else { continue };
            let image = ImageRef::parse(value).map_err(anyhow::Error::msg)?;
            if image.digest.is_some() {
                continue;
            }
            let digest = match resolved.get(value) {
                Some(digest) => digest.clone(),
                None => {
                    let digest = resolve(&image, mirror)
                        .with_context(|| format!("resolve {value} for service `{}`", service.name))?;
                    resolved.insert(value.to_string(), digest.clone());
                    digest
                }
            };
            pins.push(Pin { service: service.name.clone(), key, value: format!("{value}@{digest}") });
        }
    }
    if pins.is_empty() {
        eprintln!("every base image is already pinned by digest");
        return Ok(());
    }
    let path = root.join(manifest::MANIFEST_PATH);
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", manifest::MANIFEST_PATH))?;
    let pinned = manifest::with_pins(&text, &pins)?;
    // What is written must still be a valid manifest.
    let reloaded =
        Manifest::parse(&pinned, manifest::MANIFEST_PATH, Some(root)).map_err(|error| anyhow::anyhow!("{error}"))?;
    std::fs::write(&path, pinned).with_context(|| format!("write {}", manifest::MANIFEST_PATH))?;
    for pin in &pins {
        eprintln!("{}: {} = {}", pin.service, pin.key, pin.value);
    }
    crate::codegen::run(root, &reloaded, crate::codegen::Mode::Write)
}

/// The digest a base tag names now, from its registry or the mirror (same path).
fn resolve(image: &ImageRef, mirror: Option<&str>) -> anyhow::Result<String> {
    let host = mirror.unwrap_or(&image.registry);
    let tag = image.tag.as_deref().unwrap_or("latest");
    Client::new(host)?
        .head_manifest(&image.repository, tag)?
        .with_context(|| format!("{host}/{}:{tag} does not exist", image.repository))
}
