//! The client against a scripted loopback HTTP server: what a real registry will not do on
//! demand (token challenges, 429 with Retry-After, persistent 503, lying digests, huge bodies).

use std::sync::{Arc, Mutex};

use base64::Engine;

use super::*;
use crate::test_server::{reply, serve};

fn quick_policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        budget: Duration::from_secs(5),
        timeout: Duration::from_secs(5),
    }
}

fn client(address: &str, credential: Option<Credential>) -> Client {
    Client::with_credential(address, auth::Resolved { credential, source: "the test".into() }, quick_policy())
}

const INDEX: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;

#[test]
fn bearer_token_flow_with_basic_credentials() {
    let (address, log) = serve(|request, address| {
        if request.path.starts_with("/token") {
            assert!(request.path.contains("scope=repository%3Aorg%2Fsvc%3Apull"), "{}", request.path);
            return match request.authorization.as_deref() {
                Some(header) if header.starts_with("Basic ") => {
                    reply(200, &[], br#"{"token":"T0K3N","expires_in":300}"#)
                }
                _ => reply(401, &[], b""),
            };
        }
        if request.authorization.as_deref() == Some("Bearer T0K3N") {
            let digest = oci::sha256_digest(INDEX);
            return reply(200, &[("Docker-Content-Digest", &digest), ("Content-Type", oci::OCI_INDEX)], INDEX);
        }
        let challenge =
            format!(r#"Bearer realm="http://{address}/token",service="test-registry",scope="repository:org/svc:pull""#);
        reply(
            401,
            &[("WWW-Authenticate", &challenge)],
            br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
        )
    });
    let credential = Credential::Basic { username: "u".into(), password: Secret::new("p") };
    let client = client(&address, Some(credential));
    let manifest = client.get_manifest("org/svc", "v1").unwrap().unwrap();
    assert!(manifest.is_index());
    // A second call reuses the token: one request, no new challenge.
    client.get_manifest("org/svc", "v1").unwrap().unwrap();
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 4, "{log:?}");
    assert!(
        log[1].starts_with("GET /token?")
            && log[1].ends_with(&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("u:p"))),
        "{log:?}"
    );
    assert!(log[2].ends_with("Bearer T0K3N") && log[3].ends_with("Bearer T0K3N"), "{log:?}");
    assert_eq!(client.request_count(), 4);
}

#[test]
fn too_many_requests_waits_as_the_registry_says() {
    let calls = Arc::new(Mutex::new(0));
    let counter = calls.clone();
    let (address, _) = serve(move |_, _| {
        let mut calls = counter.lock().unwrap();
        *calls += 1;
        if *calls == 1 {
            reply(429, &[("Retry-After", "1")], br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#)
        } else {
            reply(200, &[], br#"{"tags":["a"]}"#)
        }
    });
    let started = Instant::now();
    assert_eq!(client(&address, None).list_tags("org/svc").unwrap(), ["a"]);
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 was honoured");
}

#[test]
fn a_persistent_503_gives_up_within_bounds_and_says_so() {
    let (address, log) =
        serve(|_, _| reply(503, &[], br#"{"errors":[{"code":"UNAVAILABLE","message":"maintenance"}]}"#));
    let message = client(&address, None).head_manifest("org/svc", "v1").unwrap_err().to_string();
    assert!(message.contains("HTTP 503") && message.contains("gave up after 3 attempts"), "{message}");
    assert_eq!(log.lock().unwrap().len(), 3);
}

#[test]
fn a_retry_after_beyond_the_budget_fails_at_once() {
    let (address, log) = serve(|_, _| reply(429, &[("Retry-After", "120")], b""));
    let message = client(&address, None).list_tags("org/svc").unwrap_err().to_string();
    assert!(message.contains("the registry asked to wait 120s"), "{message}");
    assert_eq!(log.lock().unwrap().len(), 1);
}

#[test]
fn content_that_does_not_match_the_announced_digest_is_refused() {
    let (address, _) = serve(|_, _| {
        reply(
            200,
            &[("Docker-Content-Digest", &format!("sha256:{}", "0".repeat(64))), ("Content-Type", oci::OCI_INDEX)],
            INDEX,
        )
    });
    let message = format!("{:#}", client(&address, None).get_manifest("org/svc", "v1").unwrap_err());
    assert!(message.contains("refusing to use it"), "{message}");
}

#[test]
fn a_huge_manifest_is_refused() {
    let huge = vec![b' '; (MAX_MANIFEST_BYTES + 1024) as usize];
    let (address, _) = serve(move |_, _| reply(200, &[("Content-Type", oci::OCI_INDEX)], &huge));
    let message = client(&address, None).get_manifest("org/svc", "v1").unwrap_err().to_string();
    assert!(message.contains("larger than"), "{message}");
}

#[test]
fn basic_challenge_without_credentials_says_how_to_log_in() {
    let (address, _) = serve(|_, _| reply(401, &[("WWW-Authenticate", r#"Basic realm="r""#)], b""));
    let message = format!("{:#}", client(&address, None).list_tags("org/svc").unwrap_err());
    assert!(
        message.contains("none is configured") && message.contains(&format!("docker login {address}")),
        "{message}"
    );
}

#[test]
fn api_base_by_host() {
    assert_eq!(api_base("docker.io"), "https://registry-1.docker.io");
    assert_eq!(api_base("127.0.0.1:5000"), "http://127.0.0.1:5000");
    assert_eq!(api_base("localhost:5000"), "http://localhost:5000");
    assert_eq!(api_base("ghcr.io"), "https://ghcr.io");
}

#[test]
fn backoff_grows_and_is_capped() {
    let policy = RetryPolicy {
        attempts: 5,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
        budget: Duration::from_secs(10),
        timeout: Duration::from_secs(1),
    };
    assert!(policy.backoff(1) <= Duration::from_millis(125) && policy.backoff(1) >= Duration::from_millis(75));
    assert!(policy.backoff(3) >= Duration::from_millis(300));
    assert!(policy.backoff(12) <= Duration::from_millis(1250));
}

#[test]
fn retry_after_in_seconds() {
    let mut headers = ureq::http::HeaderMap::new();
    headers.insert("retry-after", "7".parse().unwrap());
    assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
    headers.insert("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
    assert_eq!(retry_after(&headers), None);
}

#[test]
fn docker_hub_rate_limit_headers_are_read_from_a_head() {
    let (address, log) =
        serve(|_, _| reply(200, &[("ratelimit-limit", "100;w=21600"), ("ratelimit-remaining", "76;w=21600")], b""));
    let limit = client(&address, None).rate_limit("library/node", "20-alpine").unwrap();
    assert_eq!(limit, Some(RateLimit { limit: 100, remaining: 76 }));
    assert!(log.lock().unwrap()[0].starts_with("HEAD "), "a HEAD is not counted as a pull");
}
