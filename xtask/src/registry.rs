//! The OCI distribution HTTP API of an image registry.

use std::time::Duration;

use anyhow::Context;

use crate::reference::DOCKER_HUB;

/// The API's base URL: Docker Hub's API host for `docker.io`, plain HTTP for loopback
/// registries (as the engine itself allows), HTTPS for everything else.
pub fn api_base(host: &str) -> String {
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    let loopback = name == "localhost" || name.starts_with("127.") || name == "[::1]";
    match host {
        DOCKER_HUB | "index.docker.io" => "https://registry-1.docker.io".to_string(),
        _ if loopback => format!("http://{host}"),
        _ => format!("https://{host}"),
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(5)))
        .timeout_global(Some(Duration::from_secs(15)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// `GET /v2/`: 200 (open) or 401 (asks for credentials) both mean a registry answers.
pub fn ping(host: &str) -> anyhow::Result<u16> {
    let url = format!("{}/v2/", api_base(host));
    let response = agent().get(&url).call().with_context(|| format!("GET {url}"))?;
    Ok(response.status().as_u16())
}

#[cfg(test)]
mod tests {
    #[test]
    fn api_base_by_host() {
        assert_eq!(super::api_base("docker.io"), "https://registry-1.docker.io");
        assert_eq!(super::api_base("127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(super::api_base("localhost:5000"), "http://localhost:5000");
        assert_eq!(super::api_base("ghcr.io"), "https://ghcr.io");
    }
}
