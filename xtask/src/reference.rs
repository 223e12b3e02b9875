//! Image references (`[registry/]repository[:tag][@digest]`): parsing with Docker Hub's
//! normalization, validation against the OCI grammar, and the base-image mirror rewrite.

use std::fmt;

/// Docker Hub's canonical registry name in references.
pub const DOCKER_HUB: &str = "docker.io";

/// A fully normalized image reference: `node:20-alpine` is `docker.io/library/node:20-alpine`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses a reference as `docker pull` reads it. The error says which part is wrong.
    pub fn parse(text: &str) -> Result<ImageRef, String> {
        if text.is_empty() {
            return Err("the image reference is empty".into());
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                validate_digest(digest)?;
                (rest, Some(digest.to_string()))
            }
            None => (text, None),
        };
        // A tag is what follows the last ':' after the last '/'; a ':' before it is a port.
        let last_slash = rest.rfind('/').map_or(0, |index| index + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(colon) => {
                let (name, tag) = rest.split_at(last_slash + colon);
                (name, Some(tag[1..].to_string()))
            }
            None => (rest, None),
        };
        if let Some(tag) = &tag {
            validate_tag(tag)?;
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, remainder)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (first.to_string(), remainder.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        validate_registry_host(&registry)?;
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        validate_repository(&repository)?;
        Ok(ImageRef { registry, repository, tag, digest })
    }

    /// The same image served by a mirror: the registry host is replaced and the path kept, as
    /// pull-through caches do (`node:20-alpine` via `127.0.0.1:5000` is
    /// `127.0.0.1:5000/library/node:20-alpine`).
    pub fn through_mirror(&self, mirror_host: &str) -> ImageRef {
        ImageRef { registry: mirror_host.to_string(), ..self.clone() }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `host[:port]`, lowercase DNS labels or an IP address.
pub fn validate_registry_host(host: &str) -> Result<(), String> {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let name_ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if !name_ok {
        return Err(format!(
            "registry host `{host}` is not a lowercase host name or IP address (with an optional :port)"
        ));
    }
    if let Some(port) = port {
        if port.parse::<u16>().map_or(true, |port| port == 0) {
            return Err(format!("registry port in `{host}` must be a number from 1 to 65535"));
        }
    }
    Ok(())
}

/// A repository path: lowercase components `[a-z0-9]+([._-][a-z0-9]+)*` joined by `/`.
pub fn validate_repository(repository: &str) -> Result<(), String> {
    let component_ok = |component: &str| {
        !component.is_empty()
            && component
                .split(['.', '_', '-'])
                .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
    };
    if repository.len() > 255 || !repository.split('/').all(component_ok) {
        return Err(format!(
            "repository `{repository}` must be lowercase letters and digits, separated by single '.', '_', '-' or '/'"
        ));
    }
    Ok(())
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}` (OCI distribution spec; no `+`).
pub fn validate_tag(tag: &str) -> Result<(), String> {
    let mut bytes = tag.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if !first_ok || !rest_ok || tag.len() > 128 {
        return Err(format!(
            "tag `{tag}` must be 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
        ));
    }
    Ok(())
}

pub fn validate_digest(digest: &str) -> Result<(), String> {
    let valid = digest.split_once(':').is_some_and(|(algorithm, hex)| {
        algorithm == "sha256"
            && hex.len() == 64
            && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    });
    if valid { Ok(()) } else { Err(format!("digest `{digest}` is not `sha256:` followed by 64 lowercase hex digits")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_official_images_are_normalized() {
        let reference = ImageRef::parse("node:20-alpine").unwrap();
        assert_eq!(reference.to_string(), "docker.io/library/node:20-alpine");
        assert_eq!(ImageRef::parse("battlescope/frontend").unwrap().to_string(), "docker.io/battlescope/frontend");
    }

    #[test]
    fn a_port_is_not_a_tag() {
        let reference = ImageRef::parse("127.0.0.1:5000/battlescope/frontend").unwrap();
        assert_eq!(reference.registry, "127.0.0.1:5000");
        assert_eq!(reference.repository, "battlescope/frontend");
        assert_eq!(reference.tag, None);
        let tagged = ImageRef::parse("localhost:5000/a/b:v3.1.0-arm64").unwrap();
        assert_eq!(tagged.tag.as_deref(), Some("v3.1.0-arm64"));
    }

    #[test]
    fn digests_are_kept() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let reference = ImageRef::parse(&format!("ghcr.io/o/r:1@{digest}")).unwrap();
        assert_eq!(reference.digest.as_deref(), Some(digest.as_str()));
        assert!(ImageRef::parse("ghcr.io/o/r@sha256:abc").unwrap_err().contains("64 lowercase hex"));
    }

    #[test]
    fn mirror_replaces_the_host_and_keeps_the_path() {
        let base = ImageRef::parse("node:20-alpine").unwrap();
        assert_eq!(base.through_mirror("127.0.0.1:5000").to_string(), "127.0.0.1:5000/library/node:20-alpine");
        let ghcr = ImageRef::parse("ghcr.io/acme/base:1").unwrap();
        assert_eq!(ghcr.through_mirror("mirror.internal").to_string(), "mirror.internal/acme/base:1");
    }

    #[test]
    fn bad_parts_are_named() {
        assert!(ImageRef::parse("Node:20").unwrap_err().contains("repository `library/Node`"));
        assert!(ImageRef::parse("node:-x").unwrap_err().contains("tag `-x`"));
        assert!(ImageRef::parse("node:1+build").unwrap_err().contains("tag `1+build`"));
        assert!(ImageRef::parse("Registry.io/a/b").unwrap_err().contains("registry host"));
        assert!(validate_registry_host("host:99999").unwrap_err().contains("port"));
    }
}
