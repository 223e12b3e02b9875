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

/// The CI shape of a build spread over machines: one runner per platform builds and pushes the
/// frontend with `--digest-file`; a final job joins the digest files with
/// `publish --from-digests` into the full tag scheme.
#[test]
fn per_platform_builds_joined_from_digest_files() {
    let Some(registry) = test_registry() else { return };
    let organization = format!("digests-{}", std::process::id());
    let repository = format!("{organization}/frontend");
    let digests = tempfile::tempdir().unwrap();
    let target = ["--registry", &registry, "--organization", &organization];
    let mut runner_images = Vec::new();
    for arch in ["amd64", "arm64"] {
        let file = digests.path().join(format!("frontend-{arch}.json"));
        let tag = format!("v3.1.0-runner-{arch}");
        let output =
            run(xtask(
                &[
                    &[
                        "build",
                        "--service",
                        "frontend",
                        "--platform",
                        &format!("linux/{arch}"),
                        "--push",
                        "--tag",
                        &tag,
                    ][..],
                    &target,
                    &["--base-mirror", &registry, "--network", "host", "--digest-file", file.to_str().unwrap()],
                ]
                .concat(),
            ));
        assert!(output.status.success(), "the {arch} runner's build");
        let records: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(records[0]["platform"], format!("linux/{arch}"));
        assert_eq!(records[0]["repository"], format!("{registry}/{repository}"));
        // What the runner pushed: the platform image, possibly in an index with its attestation.
        let pushed = manifest(&registry, &repository, records[0]["digest"].as_str().unwrap());
        let image = match index_platforms(&pushed).as_slice() {
            [] => records[0]["digest"].as_str().unwrap().to_string(),
            [(platform, digest)] => {
                assert_eq!(platform, &format!("linux/{arch}"));
                digest.clone()
            }
            more => panic!("one platform per runner, got {more:?}"),
        };
        runner_images.push((format!("linux/{arch}"), image));
    }
    let publish = |directory: &std::path::Path, extra: &[&str]| {
        run(xtask(
            &[
                &["publish", "--version", "v3.1.0", "--service", "frontend", "--from", "v3.1.0-joined"][..],
                &target,
                &["--from-digests", directory.to_str().unwrap()],
                extra,
            ]
            .concat(),
        ))
    };

    // One runner's file missing: refused, nothing written.
    let partial = tempfile::tempdir().unwrap();
    std::fs::copy(digests.path().join("frontend-amd64.json"), partial.path().join("frontend-amd64.json")).unwrap();
    let before = tag_digests(&registry, &repository);
    let refused = publish(partial.path(), &[]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no digest file records a linux/arm64 image"));
    assert_eq!(tag_digests(&registry, &repository), before, "nothing written");

    // The dry run shows the plan and writes nothing.
    let dry_run = publish(digests.path(), &["--dry-run"]);
    assert!(dry_run.status.success());
    assert_eq!(tag_digests(&registry, &repository), before, "a dry run writes nothing");

    let output = publish(digests.path(), &[]);
    assert!(output.status.success(), "publish --from-digests");
    let tags = tag_digests(&registry, &repository);
    let index_digest = digest_of(&tags, "v3.1.0").expect("v3.1.0");
    let index = manifest(&registry, &repository, &index_digest);
    assert_eq!(index_platforms(&index), runner_images, "the index joins exactly what the runners pushed");
    assert_eq!(index["annotations"]["org.opencontainers.image.version"], "3.1.0");
    assert_eq!(digest_of(&tags, "v3.1.0-joined").as_ref(), Some(&index_digest), "the joined index is the source");
    for tag in ["v3.1.0", "v3.1", "v3", "latest"] {
        assert_eq!(digest_of(&tags, tag).as_ref(), Some(&index_digest), "{tag}");
        for (platform, image) in &runner_images {
            let arch = platform.trim_start_matches("linux/");
            assert_eq!(digest_of(&tags, &format!("{tag}-{arch}")).as_ref(), Some(image), "{tag}-{arch}");
        }
    }
}
