//! End to end, for real: every service built by docker buildx for linux/amd64 and linux/arm64
//! (QEMU), pushed to the loopback registry, then checked from the registry as a user would.
#![allow(clippy::print_stderr, reason = "tests narrate to stderr, which cargo test captures")]

mod support;

use std::time::Instant;

use serde_json::Value;
use support::*;

#[test]
fn every_service_is_built_for_both_platforms_pushed_and_runs_as_1001() {
    let Some(registry) = test_registry() else { return };
    let started = Instant::now();
    let output = run(xtask(&[
        "build",
        "--platform",
        "linux/amd64,linux/arm64",
        "--push",
        "--registry",
        &registry,
        "--base-mirror",
        &registry,
        "--network",
        "host",
        "--registry-cache",
        "--json",
    ]));
    assert!(output.status.success(), "build failed");
    eprintln!("figure: end-to-end build of 7 services x 2 platforms took {:.1}s", started.elapsed().as_secs_f64());
    let built: Vec<Value> = serde_json::from_slice(&output.stdout).expect("--json prints the images built");
    let sha = String::from_utf8(std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().unwrap().stdout)
        .unwrap();
    let sha = sha.trim();
    let tag = format!("v3.0.0-dev-{}", &sha[..7]);

    for service in SERVICES {
        let repository = format!("battlescope/{service}");
        let entry =
            built.iter().find(|image| image["service"] == service).unwrap_or_else(|| panic!("{service} not reported"));
        assert_eq!(entry["image"], format!("{registry}/{repository}:{tag}"));

        let index = manifest(&registry, &repository, &tag);
        assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json", "{service}: {index}");
        assert_eq!(entry["digest"].as_str().map(str::len), Some(71), "{service}: the index digest is reported");
        let annotations = &index["annotations"];
        assert_eq!(
            annotations["org.opencontainers.image.description"]
                .as_str()
                .map(|text| text.starts_with("BattleScope V3 - ")),
            Some(true),
            "{service}: {index}"
        );
        assert_eq!(annotations["org.opencontainers.image.licenses"], "MIT");
        let platforms = index_platforms(&index);
        let names: Vec<&str> = platforms.iter().map(|(platform, _)| platform.as_str()).collect();
        assert_eq!(names, ["linux/amd64", "linux/arm64"], "{service}: platforms in the index");

        for (platform, digest) in &platforms {
            let config = image_config(&registry, &repository, digest);
            assert_eq!(config["architecture"], platform.trim_start_matches("linux/"), "{service} {platform}");
            assert_eq!(config["config"]["User"], "1001:1001", "{service} {platform}: numeric non-root user");
            let labels = &config["config"]["Labels"];
            assert_eq!(labels["org.opencontainers.image.title"], service);
            assert_eq!(labels["org.opencontainers.image.version"], tag.trim_start_matches('v'));
            assert_eq!(labels["org.opencontainers.image.revision"], sha);
            assert_eq!(labels["org.opencontainers.image.source"], "https://github.com/battlescope/battle-monitor");
            assert_eq!(labels["org.opencontainers.image.licenses"], "MIT");
            assert!(labels["org.opencontainers.image.created"].as_str().is_some_and(|created| created.ends_with('Z')));
            assert!(labels["org.opencontainers.image.description"].as_str().is_some_and(|text| !text.is_empty()));
            assert!(config["config"]["Healthcheck"]["Test"].is_array(), "{service}: a health check");
        }
    }

    let cache_tags = registry_json(&registry, "battlescope/frontend/tags/list");
    assert!(
        cache_tags["tags"].as_array().unwrap().iter().any(|tag| tag == "buildcache"),
        "registry cache written: {cache_tags}"
    );

    // The arm64 images really run, under QEMU, as uid 1001, and answer their health checks.
    let battle = format!("{registry}/battlescope/battle-service:{tag}");
    let health = serve_and_get(&battle, "/health");
    let health: Value = serde_json::from_str(&health).expect("the health answer is JSON");
    assert_eq!(
        (health["status"].as_str(), health["arch"].as_str(), health["uid"].as_u64()),
        (Some("ok"), Some("arm64"), Some(1001))
    );

    let frontend = format!("{registry}/battlescope/frontend:{tag}");
    assert_eq!(serve_and_get(&frontend, "/health").trim(), "ok");
    assert!(serve_and_get(&frontend, "/").contains("<title>BattleScope</title>"));
    let uname = std::process::Command::new("docker")
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--platform",
            "linux/arm64",
            "--entrypoint",
            "uname",
            &frontend,
            "-m",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&uname.stdout).trim(), "aarch64");
}

/// Runs the arm64 image on the host network on a free port and GETs `path` once it answers.
fn serve_and_get(image: &str, path: &str) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let name = format!("xtask-e2e-{port}");
    let started = std::process::Command::new("docker")
        .args([
            "run",
            "-d",
            "--rm",
            "--name",
            &name,
            "--network",
            "host",
            "--platform",
            "linux/arm64",
            "--pull",
            "always",
        ])
        .args(["-e", &format!("PORT={port}"), image])
        .output()
        .unwrap();
    assert!(started.status.success(), "docker run {image}: {}", String::from_utf8_lossy(&started.stderr));
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut answer = None;
    for _ in 0..100 {
        if let Ok(mut response) = ureq::get(&url).call() {
            answer = Some(response.body_mut().read_to_string().unwrap());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _ = std::process::Command::new("docker").args(["rm", "-f", &name]).output();
    answer.unwrap_or_else(|| panic!("{image} did not answer {url} within 20s"))
}
