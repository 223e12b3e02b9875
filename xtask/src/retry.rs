//! Retrying the external commands that talk to a registry (buildx pushes, syft, scanners) when
//! their output says the registry failed them for a passing reason; the tool's own client
//! retries its requests itself (registry/mod.rs).

use std::time::Duration;

/// How many times such a command runs at most.
pub const ATTEMPTS: u32 = 3;

/// Whether a command's output says a registry failed it for a passing reason: an HTTP status
/// that comes and goes (distribution answers 500 when it reads a tag another request is
/// writing), or a connection that broke or timed out. Only lines about talking to a registry
/// count, so a failing build step or a real finding is never retried.
pub fn is_transient_registry_failure(output: &str) -> bool {
    const REGISTRY_LINES: [&str; 7] = [
        "failed to push",
        "failed to do request",
        "unexpected status",
        "unexpected HTTP status",
        "from daemon",
        "from registry",
        "oci-registry",
    ];
    const PASSING: [&str; 14] = [
        "500 Internal Server Error",
        "502 Bad Gateway",
        "503 Service Unavailable",
        "504 Gateway Timeout",
        "429 Too Many Requests",
        "TOOMANYREQUESTS",
        "UNAVAILABLE",
        "connection reset by peer",
        "connection refused",
        "transport connection broke",
        "broken pipe",
        "i/o timeout",
        "unexpected EOF",
        ": EOF",
    ];
    output.lines().any(|line| {
        REGISTRY_LINES.iter().any(|marker| line.contains(marker)) && PASSING.iter().any(|marker| line.contains(marker))
    })
}

/// Runs `attempt` until it succeeds, fails for a reason that is not a passing registry
/// failure, or has run [`ATTEMPTS`] times; `note` hears about each retry.
pub fn transient<T>(mut attempt: impl FnMut() -> anyhow::Result<T>, mut note: impl FnMut(&str)) -> anyhow::Result<T> {
    let mut done = 1;
    loop {
        match attempt() {
            Err(error)
                if done < ATTEMPTS
                    && !crate::process::interrupted()
                    && is_transient_registry_failure(&format!("{error:#}")) =>
            {
                note(&format!("the registry failed it transiently; retrying (attempt {} of {ATTEMPTS})", done + 1));
                std::thread::sleep(Duration::from_secs(1 << done));
                done += 1;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_passing_registry_failures_are_retried() {
        // Recorded from buildx and syft through the fault proxy (tests/fault_e2e.rs).
        for transient in [
            "#18 ERROR: unexpected status from HEAD request to http://127.0.0.1:5055/v2/x/manifests/t: 500 Internal Server Error",
            "#10 ERROR: failed to push 127.0.0.1:39197/o/frontend:v3.1.0-dev-031e7f6: failed commit on ref \"manifest-sha256:fb71\": failed to do request: Put \"https://127.0.0.1:39197/v2/o/frontend/manifests/sha256:fb71\": net/http: HTTP/1.x transport connection broke: malformed HTTP response",
            "ERROR: Error response from daemon: received unexpected HTTP status: 502 Bad Gateway",
            "#13 ERROR: failed to push x: failed to do request: Head \"https://127.0.0.1:36977/v2/o/frontend/blobs/sha256:e6\": EOF",
            "[0000] ERROR could not determine source: an error occurred attempting to resolve '127.0.0.1:38335/o/frontend:v3.1.0': oci-registry: failed to get image descriptor from registry: unexpected EOF",
            "[0000] ERROR could not determine source: oci-registry: failed to get image descriptor from registry: GET http://127.0.0.1:45457/v2/o/frontend/manifests/v3.1.0: TOOMANYREQUESTS: too many requests",
        ] {
            assert!(is_transient_registry_failure(transient), "{transient}");
        }
        for lasting in [
            "ERROR: failed to solve: process \"/bin/sh -c npm ci\" did not complete successfully: exit code: 1",
            // A build step's own output mentioning a status is no registry failure.
            "#9 0.51 npm ERR! 503 Service Unavailable - GET https://registry.npmjs.org/x",
            "oci-registry: failed to get image descriptor from registry: GET http://r/v2/o/f/manifests/v1: MANIFEST_UNKNOWN: manifest unknown",
        ] {
            assert!(!is_transient_registry_failure(lasting), "{lasting}");
        }
    }

    #[test]
    fn retries_stop_at_the_bound_or_at_a_lasting_failure() {
        let mut calls = 0;
        let result: anyhow::Result<()> = transient(
            || {
                calls += 1;
                anyhow::bail!("failed to push x: 503 Service Unavailable")
            },
            |_| {},
        );
        assert!(result.is_err());
        assert_eq!(calls, ATTEMPTS);
        let mut calls = 0;
        let result: anyhow::Result<()> = transient(
            || {
                calls += 1;
                anyhow::bail!("exit code: 1")
            },
            |_| {},
        );
        assert!(result.is_err());
        assert_eq!(calls, 1);
    }
}
