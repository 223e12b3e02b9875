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
    let mut resolver = BaseResolver::new(mirror);
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
            let digest = resolver.resolve(value).with_context(|| format!("for service `{}`", service.name))?;
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

/// Resolves base image references to the digests their registry (or the mirror, same path)
/// serves now: one client per host, one lookup per reference, failures remembered too (so one
/// unreachable registry costs its retries once, not once per service).
pub struct BaseResolver<'a> {
    mirror: Option<&'a str>,
    clients: HashMap<String, Client>,
    digests: HashMap<String, Result<String, String>>,
}

impl<'a> BaseResolver<'a> {
    pub fn new(mirror: Option<&'a str>) -> BaseResolver<'a> {
        BaseResolver { mirror, clients: HashMap::new(), digests: HashMap::new() }
    }

    /// The digest `reference` names: its own when pinned, else the registry's answer for its tag.
    pub fn resolve(&mut self, reference: &str) -> anyhow::Result<String> {
        if let Some(known) = self.digests.get(reference) {
            return known.clone().map_err(anyhow::Error::msg);
        }
        let result = self.lookup(reference).map_err(|error| format!("resolve {reference}: {error:#}"));
        self.digests.insert(reference.to_string(), result.clone());
        result.map_err(anyhow::Error::msg)
    }

    fn lookup(&mut self, reference: &str) -> anyhow::Result<String> {
        let image = ImageRef::parse(reference).map_err(anyhow::Error::msg)?;
        if let Some(digest) = image.digest {
            return Ok(digest);
        }
        let host = self.mirror.unwrap_or(&image.registry).to_string();
        let tag = image.tag.as_deref().unwrap_or("latest");
        let client = match self.clients.entry(host.clone()) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => entry.insert(Client::new(&host)?),
        };
        client
            .head_manifest(&image.repository, tag)?
            .with_context(|| format!("{host}/{}:{tag} does not exist", image.repository))
    }
}
