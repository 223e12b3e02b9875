//! Docker Hub's repository API (`hub.docker.com/v2`), which the registry API lacks: the short
//! description and full README of a repository. The token comes from the environment.

use std::time::Duration;

use anyhow::{Context, bail};

use crate::registry::auth::Secret;

pub const TOKEN_VAR: &str = "DOCKER_HUB_TOKEN";

/// `XTASK_HUB_API` points the tool at another server speaking the same API (tests do).
pub fn api_base() -> String {
    std::env::var("XTASK_HUB_API").unwrap_or_else(|_| "https://hub.docker.com".to_string())
}

pub fn token_from_env() -> anyhow::Result<Secret> {
    match std::env::var(TOKEN_VAR) {
        Ok(token) if !token.is_empty() => Ok(Secret::new(token)),
        _ => Err(crate::error::bad_input(format!(
            "${TOKEN_VAR} is not set: create a personal access token with write access (Docker Hub, Account settings, Personal access tokens) and export it"
        ))),
    }
}

/// An HTTP agent for the Hub API: statuses are read, not raised; every call is time-bounded.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// `PATCH /v2/repositories/<namespace>/<name>/` with the short and full descriptions.
pub fn update_repository(
    base: &str,
    token: &Secret,
    namespace: &str,
    name: &str,
    short: &str,
    full: &str,
) -> anyhow::Result<()> {
    let url = format!("{}/v2/repositories/{namespace}/{name}/", base.trim_end_matches('/'));
    let agent = agent();
    let body = serde_json::json!({ "description": short, "full_description": full }).to_string();
    let mut response = agent
        .patch(&url)
        .header("Authorization", format!("Bearer {}", token.expose()))
        .header("Content-Type", "application/json")
        .send(body.as_bytes())
        .with_context(|| format!("PATCH {url}"))?;
    let status = response.status().as_u16();
    if status != 200 {
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let hint = if status == 401 || status == 403 {
            format!(": check ${TOKEN_VAR} (it needs write access to {namespace}/{name})")
        } else {
            String::new()
        };
        bail!("PATCH {url}: HTTP {status} {}{hint}", text.chars().take(200).collect::<String>());
    }
    Ok(())
}

/// `DELETE /v2/repositories/<namespace>/<name>/tags/<tag>/`: Docker Hub deletes single tags
/// this way (its registry API deletes nothing).
pub fn delete_tag(base: &str, token: &Secret, namespace: &str, name: &str, tag: &str) -> anyhow::Result<()> {
    let url = format!("{}/v2/repositories/{namespace}/{name}/tags/{tag}/", base.trim_end_matches('/'));
    let agent = agent();
    let response = agent
        .delete(&url)
        .header("Authorization", format!("Bearer {}", token.expose()))
        .call()
        .with_context(|| format!("DELETE {url}"))?;
    match response.status().as_u16() {
        200 | 202 | 204 => Ok(()),
        status => bail!(
            "DELETE {url}: HTTP {status}{}",
            if status == 401 || status == 403 { format!(": check ${TOKEN_VAR}") } else { String::new() }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_server::{reply, serve};

    #[test]
    fn patches_the_repository_with_both_descriptions() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let record = seen.clone();
        let (address, log) = serve(move |request, _| {
            *record.lock().unwrap() = Some(String::from_utf8(request.body.clone()).unwrap());
            if request.authorization.as_deref() == Some("Bearer hub-token") {
                reply(200, &[], b"{}")
            } else {
                reply(401, &[], b"{\"detail\":\"no\"}")
            }
        });
        let token = Secret::new("hub-token");
        update_repository(&format!("http://{address}"), &token, "battlescope", "frontend", "short", "# Full").unwrap();
        assert_eq!(log.lock().unwrap()[0], "PATCH /v2/repositories/battlescope/frontend/ Bearer hub-token");
        let body: serde_json::Value = serde_json::from_str(seen.lock().unwrap().as_deref().unwrap()).unwrap();
        assert_eq!(body, serde_json::json!({ "description": "short", "full_description": "# Full" }));

        let message =
            update_repository(&format!("http://{address}"), &Secret::new("wrong"), "battlescope", "frontend", "s", "f")
                .unwrap_err()
                .to_string();
        assert!(message.contains("HTTP 401") && message.contains("DOCKER_HUB_TOKEN"), "{message}");
        assert!(!message.contains("wrong"), "the token is never printed");
    }

    #[test]
    fn deletes_a_single_tag() {
        let (address, log) =
            serve(|request, _| if request.method == "DELETE" { reply(204, &[], b"") } else { reply(405, &[], b"") });
        delete_tag(&format!("http://{address}"), &Secret::new("hub-token"), "battlescope", "frontend", "v3.0.1")
            .unwrap();
        assert_eq!(
            log.lock().unwrap()[0],
            "DELETE /v2/repositories/battlescope/frontend/tags/v3.0.1/ Bearer hub-token"
        );
    }
}
