//! The build plan's command lines, for each builder the tool may meet.

use std::path::Path;

use super::*;

fn manifest() -> Manifest {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    Manifest::load(root).unwrap()
}

fn revision() -> Revision {
    Revision {
        sha: "0123456789abcdef0123456789abcdef01234567".into(),
        short_sha: "0123456".into(),
        created: "2026-12-04T15:40:00Z".into(),
    }
}

fn containerd_engine() -> Capabilities {
    Capabilities {
        builder: "default".into(),
        driver: "docker".into(),
        platforms: vec!["linux/amd64".into(), "linux/amd64/v2".into(), "linux/arm64".into()],
        native: "linux/amd64".into(),
        containerd_store: true,
    }
}

const NODE_DOCKERFILE: &str = "FROM --platform=$BUILDPLATFORM node:20-alpine AS build\nFROM node:20-alpine\n";

fn plan_for(request: &BuildRequest, capabilities: &Capabilities) -> anyhow::Result<BuildPlan> {
    let manifest = manifest();
    let tag = dev_tag(&manifest, &revision());
    let dockerfiles = vec![("battle-service".to_string(), NODE_DOCKERFILE.to_string())];
    plan(&manifest, request, &tag, &revision(), capabilities, &dockerfiles)
}

fn commands(plan: &BuildPlan) -> Vec<String> {
    plan.images.iter().flat_map(|image| image.steps.iter().map(|step| step.to_string())).collect()
}

#[test]
fn default_is_every_service_for_the_engine_platform_loaded_locally() {
    let plan = plan_for(&BuildRequest::default(), &containerd_engine()).unwrap();
    assert_eq!(plan.images.len(), 7);
    let battle = &plan.images[2];
    assert_eq!(battle.image, "docker.io/battlescope/battle-service:v3.0.0-dev-0123456");
    assert_eq!(
        commands(&plan)[2],
        "docker buildx build --progress plain --platform linux/amd64 --file docker/battle-service.Dockerfile \
         --build-arg VERSION=3.0.0-dev-0123456 --build-arg REVISION=0123456789abcdef0123456789abcdef01234567 \
         --build-arg CREATED=2026-12-04T15:40:00Z \
         --annotation 'manifest:org.opencontainers.image.description=BattleScope V3 - battle-service - Battle clustering' \
         --annotation manifest:org.opencontainers.image.source=https://github.com/battlescope/battle-monitor \
         --annotation manifest:org.opencontainers.image.version=3.0.0-dev-0123456 \
         --annotation manifest:org.opencontainers.image.licenses=MIT \
         --tag docker.io/battlescope/battle-service:v3.0.0-dev-0123456 \
         --load --metadata-file target/xtask/build/battle-service.metadata.json services/battle-service"
    );
}

#[test]
fn multi_platform_push_through_a_mirror_on_the_host_network() {
    let request = BuildRequest {
        services: vec!["battle-service".into()],
        platforms: Some(vec![Platform::LinuxAmd64, Platform::LinuxArm64]),
        push: true,
        registry: Some("127.0.0.1:5000".into()),
        organization: None,
        version: None,
        network: Some("host".into()),
        base_mirror: Some("127.0.0.1:5001".into()),
        builder: None,
        no_cache: false,
        registry_cache: true,
        input_digests: Vec::new(),
        push_by_digest: false,
    };
    let plan = plan_for(&request, &containerd_engine()).unwrap();
    assert_eq!(plan.strategy, Strategy::MultiPlatform);
    assert_eq!(
        commands(&plan),
        [
            "docker buildx build --progress plain --platform linux/amd64,linux/arm64 --file docker/battle-service.Dockerfile \
          --network host --build-context node:20-alpine=docker-image://127.0.0.1:5001/library/node:20-alpine \
          --cache-from type=registry,ref=127.0.0.1:5000/battlescope/battle-service:buildcache \
          --cache-to type=registry,ref=127.0.0.1:5000/battlescope/battle-service:buildcache,mode=max \
          --build-arg VERSION=3.0.0-dev-0123456 --build-arg REVISION=0123456789abcdef0123456789abcdef01234567 \
          --build-arg CREATED=2026-12-04T15:40:00Z \
          --annotation 'index:org.opencontainers.image.description=BattleScope V3 - battle-service - Battle clustering' \
          --annotation index:org.opencontainers.image.source=https://github.com/battlescope/battle-monitor \
          --annotation index:org.opencontainers.image.version=3.0.0-dev-0123456 \
          --annotation index:org.opencontainers.image.licenses=MIT \
          --tag 127.0.0.1:5000/battlescope/battle-service:v3.0.0-dev-0123456 \
          --push --metadata-file target/xtask/build/battle-service.metadata.json services/battle-service"
        ]
    );
}

#[test]
fn classic_image_store_builds_each_platform_and_joins_them_in_the_registry() {
    let mut capabilities = containerd_engine();
    capabilities.containerd_store = false;
    let request = BuildRequest {
        services: vec!["battle-service".into()],
        platforms: Some(vec![Platform::LinuxAmd64, Platform::LinuxArm64]),
        push: true,
        builder: Some("native-arm".into()),
        ..BuildRequest::default()
    };
    let plan = plan_for(&request, &capabilities).unwrap();
    assert_eq!(plan.strategy, Strategy::PerPlatform);
    let commands = commands(&plan);
    assert_eq!(commands.len(), 3);
    assert!(commands[0].contains("--platform linux/amd64 --builder native-arm"), "{}", commands[0]);
    assert!(commands[0].contains("--tag docker.io/battlescope/battle-service:v3.0.0-dev-0123456-amd64 --push"));
    assert!(commands[1].contains("--tag docker.io/battlescope/battle-service:v3.0.0-dev-0123456-arm64 --push"));
    assert!(
        commands[0].contains("--annotation manifest:org.opencontainers.image.licenses=MIT"),
        "one platform per build"
    );
    assert!(commands[2].contains("--annotation index:org.opencontainers.image.licenses=MIT"), "the joined index");
    assert!(
        commands[2].ends_with("--tag docker.io/battlescope/battle-service:v3.0.0-dev-0123456 \
         docker.io/battlescope/battle-service:v3.0.0-dev-0123456-amd64 docker.io/battlescope/battle-service:v3.0.0-dev-0123456-arm64"),
        "{}",
        commands[2]
    );
    assert_eq!(plan.images[0].metadata_file, None);
}

#[test]
fn classic_store_loads_each_platform_under_its_own_tag() {
    let mut capabilities = containerd_engine();
    capabilities.containerd_store = false;
    let request = BuildRequest {
        services: vec!["frontend".into()],
        platforms: Some(Platform::ALL.to_vec()),
        ..BuildRequest::default()
    };
    let commands = commands(&plan_for(&request, &capabilities).unwrap());
    assert_eq!(commands.len(), 2, "nothing to join when loading locally");
    assert!(commands[1].contains("frontend:v3.0.0-dev-0123456-arm64 --load"));
}

#[test]
fn a_platform_the_builder_cannot_target_is_refused_with_the_fix() {
    let mut capabilities = containerd_engine();
    capabilities.platforms.retain(|platform| platform.starts_with("linux/amd64"));
    let request = BuildRequest { platforms: Some(Platform::ALL.to_vec()), ..BuildRequest::default() };
    let message = plan_for(&request, &capabilities).unwrap_err().to_string();
    assert!(message.contains("cannot build linux/arm64"), "{message}");
    assert!(message.contains("update-binfmts --enable qemu-aarch64"), "{message}");
}

#[test]
fn an_unknown_service_is_bad_input() {
    let request = BuildRequest { services: vec!["fronted".into()], ..BuildRequest::default() };
    let error = plan_for(&request, &containerd_engine()).unwrap_err();
    assert_eq!(crate::error::exit_code(&error), 2);
    assert!(error.to_string().contains("unknown service `fronted`"), "{error}");
}

#[test]
fn push_by_digest_needs_a_builder_that_can_and_names_no_tag() {
    let request = BuildRequest {
        platforms: Some(vec![Platform::LinuxArm64]),
        push: true,
        push_by_digest: true,
        ..BuildRequest::default()
    };
    let error = plan_for(&request, &containerd_engine()).unwrap_err().to_string();
    assert!(error.contains("cannot push by digest") && error.contains("docker-container"), "{error}");

    let container = Capabilities { builder: "runner".into(), driver: "docker-container".into(), ..containerd_engine() };
    let plan = plan_for(&request, &container).unwrap();
    let command = plan.images[2].steps[0].to_string();
    assert!(
        command.contains(
            "--output type=image,name=docker.io/battlescope/battle-service,push-by-digest=true,name-canonical=true,push=true"
        ),
        "{command}"
    );
    assert!(!command.contains("--tag") && !command.contains("--push"), "{command}");
    assert!(command.contains("--metadata-file target/xtask/build/battle-service.metadata.json"), "{command}");
}
