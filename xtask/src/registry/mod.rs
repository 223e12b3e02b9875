//! A blocking client for the OCI distribution HTTP API: manifests by tag or digest, tag lists,
//! deletes and blobs, with token or basic auth from the registry's challenge, bounded retries
//! on 429 and 5xx (honouring `Retry-After`), timeouts, digest checks on everything read, and a
//! count of requests made.

pub mod auth;
pub mod oci;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::de::DeserializeOwned;

use crate::reference::DOCKER_HUB;
use auth::{Challenge, Credential, Secret};
use oci::{ACCEPT_MANIFESTS, MAX_MANIFEST_BYTES, Manifest};

/// The API's base URL: Docker Hub's API host for `docker.io`, plain HTTP for loopback
/// registries (as the engine itself allows) or hosts listed in `XTASK_INSECURE_REGISTRIES`,
/// HTTPS for everything else.
pub fn api_base(host: &str) -> String {
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    let loopback = name == "localhost" || name.starts_with("127.") || name == "[::1]";
    let insecure =
        std::env::var("XTASK_INSECURE_REGISTRIES").is_ok_and(|list| list.split(',').any(|entry| entry.trim() == host));
    match host {
        DOCKER_HUB | "index.docker.io" => "https://registry-1.docker.io".to_string(),
        _ if loopback || insecure => format!("http://{host}"),
        _ => format!("https://{host}"),
    }
}

/// How hard to try before giving up on a transient failure.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// The most time one request may spend waiting between attempts.
    pub budget: Duration,
    /// Each attempt's own limit (connect, send, receive).
    pub timeout: Duration,
}

impl RetryPolicy {
    /// The defaults, adjustable through `XTASK_RETRY_ATTEMPTS`, `XTASK_RETRY_BASE_MS`,
    /// `XTASK_RETRY_BUDGET_SECS` and `XTASK_HTTP_TIMEOUT_SECS`.
    pub fn from_env() -> RetryPolicy {
        let number =
            |name: &str, default: u64| std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default);
        RetryPolicy {
            attempts: number("XTASK_RETRY_ATTEMPTS", 5) as u32,
            base_delay: Duration::from_millis(number("XTASK_RETRY_BASE_MS", 500)),
            max_delay: Duration::from_secs(8),
            budget: Duration::from_secs(number("XTASK_RETRY_BUDGET_SECS", 60)),
            timeout: Duration::from_secs(number("XTASK_HTTP_TIMEOUT_SECS", 30)),
        }
    }

    /// Exponential backoff with jitter: base·2^(attempt-1), up to max_delay, ±25%.
    fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self.base_delay.saturating_mul(1 << (attempt - 1).min(16)).min(self.max_delay);
        let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let jitter = (clock.subsec_nanos() ^ std::process::id()) % 500;
        exponential.mul_f64(0.75 + f64::from(jitter) / 1000.0)
    }
}

/// The `Retry-After` header in seconds (the HTTP-date form falls back to backoff).
fn retry_after(headers: &ureq::http::HeaderMap) -> Option<Duration> {
    let value = headers.get("retry-after")?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Pull,
    Push,
    Delete,
}

impl Access {
    fn actions(self) -> &'static str {
        match self {
            Access::Pull => "pull",
            Access::Push => "pull,push",
            Access::Delete => "pull,push,delete",
        }
    }
}

struct Reply {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The registry's error text (`{"errors":[{"code","message"}]}`), or the start of the body.
    fn error_text(&self) -> String {
        #[derive(serde::Deserialize)]
        struct Errors {
            errors: Vec<ErrorEntry>,
        }
        #[derive(serde::Deserialize)]
        struct ErrorEntry {
            code: Option<String>,
            message: Option<String>,
        }
        match serde_json::from_slice::<Errors>(&self.body) {
            Ok(errors) => errors
                .errors
                .iter()
                .map(|entry| {
                    format!(
                        "{}: {}",
                        entry.code.as_deref().unwrap_or("UNKNOWN"),
                        entry.message.as_deref().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            Err(_) => String::from_utf8_lossy(&self.body[..self.body.len().min(200)]).trim().to_string(),
        }
    }
}

/// Docker Hub's pull allowance, from a manifest `HEAD` (which is not counted as a pull).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u64,
    pub remaining: u64,
}

pub struct Client {
    pub host: String,
    base: String,
    agent: ureq::Agent,
    credential: Option<Credential>,
    credential_source: String,
    tokens: Mutex<HashMap<String, Secret>>,
    basic: AtomicBool,
    requests: AtomicUsize,
    retry: RetryPolicy,
}

impl Client {
    /// A client for `host` with the credentials configured for it (see [`auth::resolve`]).
    pub fn new(host: &str) -> anyhow::Result<Client> {
        let resolved = auth::resolve(host)?;
        Ok(Client::with_credential(host, resolved, RetryPolicy::from_env()))
    }

    /// A client with the given credentials and retry policy.
    pub fn with_credential(host: &str, resolved: auth::Resolved, retry: RetryPolicy) -> Client {
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(5).min(retry.timeout)))
            .timeout_global(Some(retry.timeout))
            .http_status_as_error(false)
            .user_agent("battlescope-xtask")
            .build()
            .into();
        Client {
            host: host.to_string(),
            base: api_base(host),
            agent,
            credential: resolved.credential,
            credential_source: resolved.source,
            tokens: Mutex::new(HashMap::new()),
            basic: AtomicBool::new(false),
            requests: AtomicUsize::new(0),
            retry,
        }
    }

    /// HTTP requests made so far (token requests included).
    /// Whether the registry is spoken to over plain HTTP (scanners need telling).
    pub fn is_insecure(&self) -> bool {
        self.base.starts_with("http://")
    }

    pub fn request_count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// `GET /v2/`: the HTTP status (200 open, 401 asks for credentials).
    pub fn ping(&self) -> anyhow::Result<u16> {
        let url = format!("{}/v2/", self.base);
        self.requests.fetch_add(1, Ordering::SeqCst);
        let response = self.agent.get(&url).call().with_context(|| format!("GET {url}"))?;
        Ok(response.status().as_u16())
    }

    /// A manifest by tag or digest; `None` when it does not exist.
    pub fn get_manifest(&self, repository: &str, reference: &str) -> anyhow::Result<Option<Manifest>> {
        let path = format!("{repository}/manifests/{reference}");
        let reply = self.send(
            "GET",
            &path,
            repository,
            Access::Pull,
            &[("Accept", ACCEPT_MANIFESTS)],
            None,
            MAX_MANIFEST_BYTES,
        )?;
        if reply.status == 404 {
            return Ok(None);
        }
        self.expect_status(&reply, "GET", &path, &[200])?;
        let expected =
            if reference.starts_with("sha256:") { Some(reference) } else { reply.header("docker-content-digest") };
        let manifest = Manifest::from_bytes(reply.body.clone(), reply.header("content-type"), expected)
            .with_context(|| format!("GET {}", self.url(&path)))?;
        Ok(Some(manifest))
    }

    /// The digest a tag points at, without downloading it (a `HEAD` is no pull on Docker Hub).
    pub fn head_manifest(&self, repository: &str, reference: &str) -> anyhow::Result<Option<String>> {
        Ok(self.head_manifest_typed(repository, reference)?.map(|(digest, _)| digest))
    }

    /// The digest and media type a reference points at, by `HEAD`.
    pub fn head_manifest_typed(&self, repository: &str, reference: &str) -> anyhow::Result<Option<(String, String)>> {
        let path = format!("{repository}/manifests/{reference}");
        let reply = self.send("HEAD", &path, repository, Access::Pull, &[("Accept", ACCEPT_MANIFESTS)], None, 0)?;
        if reply.status == 404 {
            return Ok(None);
        }
        self.expect_status(&reply, "HEAD", &path, &[200])?;
        let media_type =
            reply.header("content-type").unwrap_or_default().split(';').next().unwrap_or_default().trim().to_string();
        match reply.header("docker-content-digest") {
            Some(digest) => Ok(Some((digest.to_string(), media_type))),
            // Registries need not send the header on HEAD; fall back to reading the manifest.
            None => {
                Ok(self.get_manifest(repository, reference)?.map(|manifest| (manifest.digest, manifest.media_type)))
            }
        }
    }

    /// Tags `manifest` (already in the repository, or whose children are) as `tag`: one PUT,
    /// no layer moves. Returns the digest the registry stored, which must be the manifest's.
    pub fn put_manifest(&self, repository: &str, tag: &str, manifest: &Manifest) -> anyhow::Result<()> {
        let path = format!("{repository}/manifests/{tag}");
        let reply = self.send(
            "PUT",
            &path,
            repository,
            Access::Push,
            &[("Content-Type", &manifest.media_type)],
            Some(&manifest.bytes),
            64 * 1024,
        )?;
        self.expect_status(&reply, "PUT", &path, &[201, 200])?;
        if let Some(stored) = reply.header("docker-content-digest") {
            anyhow::ensure!(
                stored == manifest.digest,
                "PUT {}: the registry stored {stored}, not {}",
                self.url(&path),
                manifest.digest
            );
        }
        Ok(())
    }

    /// Deletes a manifest by digest (every tag on it goes too).
    pub fn delete_manifest(&self, repository: &str, digest: &str) -> anyhow::Result<()> {
        let path = format!("{repository}/manifests/{digest}");
        let reply = self.send("DELETE", &path, repository, Access::Delete, &[], None, 64 * 1024)?;
        if matches!(reply.status, 400 | 405) {
            bail!(
                "DELETE {}: the registry has deletes disabled (HTTP {}): {}",
                self.url(&path),
                reply.status,
                reply.error_text()
            );
        }
        self.expect_status(&reply, "DELETE", &path, &[202, 200])
    }

    /// Every tag of a repository, following `Link` pagination; empty when it does not exist.
    pub fn list_tags(&self, repository: &str) -> anyhow::Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct TagList {
            tags: Option<Vec<String>>,
        }
        let mut tags = Vec::new();
        let mut path = format!("{repository}/tags/list?n=1000");
        loop {
            let reply = self.send("GET", &path, repository, Access::Pull, &[], None, 16 * 1024 * 1024)?;
            if reply.status == 404 {
                return Ok(tags);
            }
            self.expect_status(&reply, "GET", &path, &[200])?;
            let page: TagList = serde_json::from_slice(&reply.body)
                .with_context(|| format!("GET {}: not a tag list", self.url(&path)))?;
            tags.extend(page.tags.unwrap_or_default());
            // `Link: </v2/<name>/tags/list?last=x&n=1000>; rel="next"`
            match reply.header("link").and_then(|link| link.split_once('<')).and_then(|(_, rest)| rest.split_once('>'))
            {
                Some((next, _)) => path = next.trim_start_matches("/v2/").to_string(),
                None => return Ok(tags),
            }
        }
    }

    /// A JSON blob (an image config), checked against its digest.
    pub fn get_blob_json<T: DeserializeOwned>(&self, repository: &str, digest: &str) -> anyhow::Result<T> {
        let path = format!("{repository}/blobs/{digest}");
        let reply = self.send("GET", &path, repository, Access::Pull, &[], None, MAX_MANIFEST_BYTES)?;
        self.expect_status(&reply, "GET", &path, &[200])?;
        let actual = oci::sha256_digest(&reply.body);
        anyhow::ensure!(actual == digest, "GET {}: content has digest {actual}: refusing to use it", self.url(&path));
        serde_json::from_slice(&reply.body).with_context(|| format!("GET {}: not JSON", self.url(&path)))
    }

    /// Docker Hub's pull allowance for this client, read with a `HEAD` of `reference`.
    pub fn rate_limit(&self, repository: &str, reference: &str) -> anyhow::Result<Option<RateLimit>> {
        let path = format!("{repository}/manifests/{reference}");
        let reply = self.send("HEAD", &path, repository, Access::Pull, &[("Accept", ACCEPT_MANIFESTS)], None, 0)?;
        let number =
            |name: &str| reply.header(name).and_then(|value| value.split(';').next()?.trim().parse::<u64>().ok());
        Ok(number("ratelimit-limit")
            .zip(number("ratelimit-remaining"))
            .map(|(limit, remaining)| RateLimit { limit, remaining }))
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/{path}", self.base)
    }

    fn expect_status(&self, reply: &Reply, method: &str, path: &str, ok: &[u16]) -> anyhow::Result<()> {
        if ok.contains(&reply.status) {
            return Ok(());
        }
        bail!("{method} {}: HTTP {}: {}", self.url(path), reply.status, reply.error_text())
    }

    /// One API call, authenticated on demand and retried within the policy's bounds.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        method: &str,
        path: &str,
        repository: &str,
        access: Access,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        body_limit: u64,
    ) -> anyhow::Result<Reply> {
        let url = self.url(path);
        let scope = format!("repository:{repository}:{}", access.actions());
        let started = Instant::now();
        let mut attempt = 0;
        let mut authenticated = false;
        loop {
            attempt += 1;
            let failure = match self.attempt(method, &url, &scope, headers, body, body_limit) {
                Ok(reply) if reply.status == 401 && !authenticated => {
                    authenticated = true;
                    attempt -= 1;
                    let challenge = reply.header("www-authenticate").and_then(auth::parse_challenge);
                    self.authenticate(challenge, &scope).with_context(|| format!("{method} {url}"))?;
                    continue;
                }
                Ok(reply) if reply.status == 401 => bail!(
                    "{method} {url}: HTTP 401: the registry refused the credentials from {}: {}; run `docker login {}` or set ${}/${}",
                    self.credential_source,
                    reply.error_text(),
                    self.host,
                    auth::USERNAME_VAR,
                    auth::PASSWORD_VAR
                ),
                Ok(reply) if matches!(reply.status, 429 | 500 | 502 | 503 | 504) => {
                    let wait = retry_after(&reply.headers);
                    (format!("HTTP {} {}", reply.status, reply.error_text()).trim_end().to_string(), wait)
                }
                Ok(reply) => return Ok(reply),
                Err(error) if is_transient(&error) => (error.to_string(), None),
                Err(ureq::Error::BodyExceedsLimit(limit)) => {
                    bail!("{method} {url}: the response is larger than {limit} bytes: refusing it")
                }
                Err(error) => bail!("{method} {url}: {error}"),
            };
            let (reason, asked) = failure;
            let wait = asked.unwrap_or_else(|| self.retry.backoff(attempt));
            let spent = started.elapsed();
            if attempt >= self.retry.attempts || spent + wait > self.retry.budget {
                let asked_note = asked
                    .map(|asked| format!(" (the registry asked to wait {}s)", asked.as_secs()))
                    .unwrap_or_default();
                bail!(
                    "{method} {url}: {reason}; gave up after {attempt} attempt{} in {:.1}s{asked_note}",
                    if attempt == 1 { "" } else { "s" },
                    spent.as_secs_f64()
                );
            }
            eprintln!(
                "{method} {url}: {reason}; retrying in {:.1}s (attempt {attempt} of {})",
                wait.as_secs_f64(),
                self.retry.attempts
            );
            std::thread::sleep(wait);
        }
    }

    fn attempt(
        &self,
        method: &str,
        url: &str,
        scope: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        body_limit: u64,
    ) -> Result<Reply, ureq::Error> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let mut request = ureq::http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(authorization) = self.authorization(scope) {
            request = request.header("Authorization", authorization);
        }
        let mut response = match body {
            Some(bytes) => self.agent.run(request.body(bytes)?)?,
            None => self.agent.run(request.body(())?)?,
        };
        let status = response.status().as_u16();
        let body = if method == "HEAD" {
            Vec::new()
        } else {
            response.body_mut().with_config().limit(body_limit.max(64 * 1024)).read_to_vec()?
        };
        Ok(Reply { status, headers: response.headers().clone(), body })
    }

    fn authorization(&self, scope: &str) -> Option<String> {
        if let Some(token) = self.tokens.lock().unwrap().get(scope) {
            return Some(format!("Bearer {}", token.expose()));
        }
        if self.basic.load(Ordering::SeqCst) {
            return self.credential.as_ref().and_then(Credential::basic_header);
        }
        None
    }

    /// Answers a 401's challenge: basic auth from the credentials, or a bearer token from the
    /// realm for this scope (basic credentials or a refresh token; anonymous without either).
    fn authenticate(&self, challenge: Option<Challenge>, scope: &str) -> anyhow::Result<()> {
        let login_hint =
            format!("run `docker login {}` or set ${}/${}", self.host, auth::USERNAME_VAR, auth::PASSWORD_VAR);
        match challenge {
            None => bail!("HTTP 401 without a usable WWW-Authenticate challenge; {login_hint}"),
            Some(Challenge::Basic) => {
                anyhow::ensure!(
                    matches!(self.credential, Some(Credential::Basic { .. })),
                    "the registry asks for a user name and password and none is configured ({}); {login_hint}",
                    self.credential_source
                );
                self.basic.store(true, Ordering::SeqCst);
                Ok(())
            }
            Some(Challenge::Bearer { realm, service, scope: challenge_scope }) => {
                let wanted = challenge_scope.unwrap_or_else(|| scope.to_string());
                let token = self.fetch_token(&realm, service.as_deref(), &wanted)?;
                self.tokens.lock().unwrap().insert(scope.to_string(), token);
                Ok(())
            }
        }
    }

    fn fetch_token(&self, realm: &str, service: Option<&str>, scope: &str) -> anyhow::Result<Secret> {
        #[derive(serde::Deserialize)]
        struct TokenReply {
            token: Option<String>,
            access_token: Option<String>,
        }
        self.requests.fetch_add(1, Ordering::SeqCst);
        let service = service.unwrap_or_default();
        let response = match &self.credential {
            Some(Credential::IdentityToken(refresh)) => self.agent.post(realm).send_form([
                ("grant_type", "refresh_token"),
                ("service", service),
                ("scope", scope),
                ("client_id", "battlescope-xtask"),
                ("refresh_token", refresh.expose()),
            ]),
            credential => {
                let mut request = self.agent.get(realm).query("service", service).query("scope", scope);
                if let Some(header) = credential.as_ref().and_then(Credential::basic_header) {
                    request = request.header("Authorization", header);
                }
                request.call()
            }
        };
        let mut response = response.with_context(|| format!("request a token from {realm}"))?;
        let status = response.status().as_u16();
        anyhow::ensure!(
            status == 200,
            "the token service {realm} answered HTTP {status} for scope {scope} with credentials from {}: run `docker login {}`",
            self.credential_source,
            self.host
        );
        let body = response.body_mut().with_config().limit(1024 * 1024).read_to_vec().context("read the token")?;
        let reply: TokenReply = serde_json::from_slice(&body).context("the token service did not answer JSON")?;
        reply
            .token
            .or(reply.access_token)
            .map(Secret::new)
            .with_context(|| format!("the token service {realm} sent no token"))
    }
}

fn is_transient(error: &ureq::Error) -> bool {
    matches!(error, ureq::Error::Io(_) | ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed)
}

#[cfg(test)]
mod tests;
