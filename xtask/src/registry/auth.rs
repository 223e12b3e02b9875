//! Registry credentials and the auth handshake: the `WWW-Authenticate` challenge, credentials
//! from the environment (CI) or `~/.docker/config.json` (people, via `auths`, `credsStore` and
//! `credHelpers`), and a [`Secret`] type that never prints its value.

use std::fmt;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::error::BadInput;
use crate::reference::DOCKER_HUB;

/// Environment variables that give CI its credentials for the target registry.
pub const USERNAME_VAR: &str = "XTASK_REGISTRY_USERNAME";
pub const PASSWORD_VAR: &str = "XTASK_REGISTRY_PASSWORD";

/// A value that must never reach output, logs, plans or errors: Debug and Display redact it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that sends it (an HTTP header or form).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Basic {
        username: String,
        password: Secret,
    },
    /// An OAuth2 refresh token (`docker login` with a token, or a helper's `<token>` user).
    IdentityToken(Secret),
}

impl Credential {
    pub fn basic_header(&self) -> Option<String> {
        match self {
            Credential::Basic { username, password } => {
                Some(format!("Basic {}", BASE64.encode(format!("{username}:{}", password.expose()))))
            }
            Credential::IdentityToken(_) => None,
        }
    }
}

/// Where a credential came from, for messages (never the credential itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub credential: Option<Credential>,
    pub source: String,
}

/// Credentials for `host`: the environment first (CI), then Docker's config file. Nothing
/// configured is not an error: public registries are read anonymously.
pub fn resolve(host: &str) -> anyhow::Result<Resolved> {
    if let (Ok(username), Ok(password)) = (std::env::var(USERNAME_VAR), std::env::var(PASSWORD_VAR)) {
        return Ok(Resolved {
            credential: Some(Credential::Basic { username, password: Secret::new(password) }),
            source: format!("${USERNAME_VAR}/${PASSWORD_VAR}"),
        });
    }
    let config = docker_config_path();
    let Some(config) = config.filter(|path| path.is_file()) else {
        return Ok(Resolved { credential: None, source: "none (no Docker config file)".into() });
    };
    let text = std::fs::read_to_string(&config)
        .map_err(|error| BadInput(format!("{}: cannot read the Docker config: {error}", config.display())))?;
    // docker_credential reports a malformed file only as "unable to read config"; say where.
    let parsed: serde_json::Value = serde_json::from_str(&text).map_err(|error| {
        BadInput(format!(
            "{}:{}:{}: the Docker config is not valid JSON ({error}); fix it or run `docker login {host}` again",
            config.display(),
            error.line(),
            error.column()
        ))
    })?;
    let server = if host == DOCKER_HUB { "https://index.docker.io/v1/" } else { host };
    let source = format!("{}", config.display());
    // The helper docker would run for this server: its own entry, else the default store.
    let helper = parsed["credHelpers"][server].as_str().or_else(|| parsed["credsStore"].as_str()).unwrap_or("?");
    match docker_credential::get_credential_from_reader(text.as_bytes(), server) {
        Ok(docker_credential::DockerCredential::UsernamePassword(username, password)) => {
            Ok(Resolved { credential: Some(Credential::Basic { username, password: Secret::new(password) }), source })
        }
        Ok(docker_credential::DockerCredential::IdentityToken(token)) => {
            Ok(Resolved { credential: Some(Credential::IdentityToken(Secret::new(token))), source })
        }
        Err(docker_credential::CredentialRetrievalError::NoCredentialConfigured) => {
            Ok(Resolved { credential: None, source: format!("none for {host} in {source}") })
        }
        // The helper's own output is left out on purpose: it is not ours to print.
        Err(
            docker_credential::CredentialRetrievalError::HelperFailure { .. }
            | docker_credential::CredentialRetrievalError::HelperCommunicationError
            | docker_credential::CredentialRetrievalError::MalformedHelperResponse,
        ) => Err(anyhow::anyhow!(
            "credential helper `docker-credential-{helper}` (configured in {source}) failed for {server}: run `echo {server} | docker-credential-{helper} get` to see why, or `docker login {host}`"
        )),
        Err(error) => Err(anyhow::anyhow!("read credentials for {host} from {source}: {error}")),
    }
}

fn docker_config_path() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(directory) => Some(PathBuf::from(directory).join("config.json")),
        None => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json")),
    }
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer { realm: String, service: Option<String>, scope: Option<String> },
}

/// Parses `Bearer realm="…",service="…",scope="…"` (RFC 7235 auth-params, quoted or not) or
/// `Basic realm="…"`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = None;
    let mut scope = None;
    let mut rest = params.trim();
    while !rest.is_empty() {
        let (key, after_key) = rest.split_once('=')?;
        let key = key.trim().to_ascii_lowercase();
        let after_key = after_key.trim_start();
        let (value, remainder) = if let Some(quoted) = after_key.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((index, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = Some(index);
                        break;
                    }
                    _ => value.push(c),
                }
            }
            (value, &quoted[end? + 1..])
        } else {
            let end = after_key.find(',').unwrap_or(after_key.len());
            (after_key[..end].trim().to_string(), &after_key[end..])
        };
        match key.as_str() {
            "realm" => realm = Some(value),
            "service" => service = Some(value),
            "scope" => scope = Some(value),
            _ => {}
        }
        rest = remainder.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge::Bearer { realm: realm?, service, scope })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_with_quotes_commas_and_escapes() {
        let header = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:battlescope/frontend:pull,push""#;
        assert_eq!(
            parse_challenge(header),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:battlescope/frontend:pull,push".into()),
            })
        );
        let odd = r#"bearer  scope="a:b:pull" , realm=http://127.0.0.1:9/token,service="x\"y""#;
        assert_eq!(
            parse_challenge(odd),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:9/token".into(),
                service: Some("x\"y".into()),
                scope: Some("a:b:pull".into())
            })
        );
        assert_eq!(parse_challenge(r#"Basic realm="Registry Realm""#), Some(Challenge::Basic));
        assert_eq!(parse_challenge(r#"Bearer service="no realm""#), None);
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn secrets_never_print() {
        let credential = Credential::Basic { username: "ci".into(), password: Secret::new("s3cret") };
        assert!(!format!("{credential:?}").contains("s3cret"));
        assert_eq!(format!("{}", Secret::new("s3cret")), "<redacted>");
        assert_eq!(credential.basic_header().unwrap(), format!("Basic {}", BASE64.encode("ci:s3cret")));
    }
}
