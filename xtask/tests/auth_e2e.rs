//! Credentials against a real registry that demands them (distribution with htpasswd): from a
//! Docker config file, from a credential helper, from the environment; refused ones; and a
//! sentinel password that must never appear in any output.
#![allow(clippy::print_stderr, reason = "tests narrate to stderr, which cargo test captures")]

mod support;

use std::path::Path;
use std::process::{Child, Command, Output};

use base64::Engine;
use support::*;

const USER: &str = "ci-bot";
const SENTINEL: &str = "S3ntinel-Pa55-4f9c2e";

/// A registry process that wants basic auth, stopped when dropped.
struct AuthRegistry {
    address: String,
    process: Child,
    _directory: tempfile::TempDir,
}

impl Drop for AuthRegistry {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn start_auth_registry() -> AuthRegistry {
    let directory = tempfile::tempdir().unwrap();
    let htpasswd = Command::new("htpasswd")
        .args(["-Bbn", USER, SENTINEL])
        .output()
        .expect("htpasswd (apache2-utils, scripts/provision.sh installs it)");
    assert!(htpasswd.status.success());
    std::fs::write(directory.path().join("htpasswd"), &htpasswd.stdout).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("127.0.0.1:{port}");
    let config = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n  delete:\n    enabled: true\nhttp:\n  addr: {address}\nauth:\n  htpasswd:\n    realm: xtask-test\n    path: {root}/htpasswd\n",
        root = directory.path().display()
    );
    std::fs::write(directory.path().join("config.yml"), config).unwrap();
    let process = Command::new("docker-registry")
        .args(["serve", &directory.path().join("config.yml").display().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("docker-registry (scripts/provision.sh installs it)");
    // From here on, dropping the guard stops the process, even if an assertion fails.
    let registry = AuthRegistry { address, process, _directory: directory };
    let url = format!("http://{}/v2/", registry.address);
    for _ in 0..100 {
        if let Ok(response) = ureq::get(&url).config().http_status_as_error(false).build().call() {
            assert_eq!(response.status(), 401, "the registry must demand credentials");
            return registry;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the htpasswd registry did not start on {}", registry.address);
}

fn basic(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// Every byte a command printed, for the sentinel search.
fn printed(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn xtask_with(docker_config: &Path, extra_path: Option<&Path>, args: &[&str]) -> Command {
    let mut command = xtask(args);
    command
        .env("DOCKER_CONFIG", docker_config)
        .env_remove("XTASK_REGISTRY_USERNAME")
        .env_remove("XTASK_REGISTRY_PASSWORD");
    if let Some(directory) = extra_path {
        command.env("PATH", format!("{}:{}", directory.display(), std::env::var("PATH").unwrap()));
    }
    command
}

#[test]
fn credentials_from_config_helper_and_environment_and_never_printed() {
    let Some(_) = test_registry() else { return };
    let registry = start_auth_registry();
    let address = registry.address.as_str();
    let pusher =
        Pusher { registry: address.to_string(), authorization: Some(format!("Basic {}", basic(USER, SENTINEL))) };
    pusher.image("auth/battle-service", "build-1", "auth-1", &["linux/amd64", "linux/arm64"]);
    pusher.image("auth/battle-service", "build-2", "auth-2", &["linux/amd64", "linux/arm64"]);
    let mut outputs = Vec::new();
    let target = ["--service", "battle-service", "--registry", address, "--organization", "auth"];

    // 1. `auths` in config.json, as `docker login` writes it.
    let with_auths = tempfile::tempdir().unwrap();
    std::fs::write(
        with_auths.path().join("config.json"),
        format!(r#"{{"auths":{{"{address}":{{"auth":"{}"}}}}}}"#, basic(USER, SENTINEL)),
    )
    .unwrap();
    let publish_args = [&["publish", "--version", "v3.0.0", "--from", "build-1"][..], &target].concat();
    let output = run(xtask_with(with_auths.path(), None, &[&publish_args[..], &["--dry-run", "--json"]].concat()));
    assert!(output.status.success(), "dry run with config credentials");
    outputs.push(output);
    let output = run(xtask_with(with_auths.path(), None, &publish_args));
    assert!(output.status.success(), "publish with config credentials");
    outputs.push(output);

    // 2. A credential helper (`credHelpers`), speaking the docker-credential protocol.
    let helper_home = tempfile::tempdir().unwrap();
    let bin = helper_home.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let helper = bin.join("docker-credential-xtasktest");
    std::fs::write(&helper, format!("#!/bin/sh\nread server\n[ \"$1\" = get ] && [ \"$server\" = \"{address}\" ] || exit 1\nprintf '{{\"Username\":\"{USER}\",\"Secret\":\"{SENTINEL}\"}}'\n")).unwrap();
    Command::new("chmod").args(["+x", &helper.display().to_string()]).status().unwrap();
    std::fs::write(helper_home.path().join("config.json"), format!(r#"{{"credHelpers":{{"{address}":"xtasktest"}}}}"#))
        .unwrap();
    let output = run(xtask_with(
        helper_home.path(),
        Some(&bin),
        &[&["publish", "--version", "v3.1.0", "--from", "build-2"][..], &target].concat(),
    ));
    assert!(output.status.success(), "publish with helper credentials");
    outputs.push(output);

    // 3. The environment, as CI provides secrets.
    let empty = tempfile::tempdir().unwrap();
    let verify_args = [&["verify", "--version", "v3.1.0"][..], &target].concat();
    let mut command = xtask_with(empty.path(), None, &verify_args);
    command.env("XTASK_REGISTRY_USERNAME", USER).env("XTASK_REGISTRY_PASSWORD", SENTINEL);
    let output = run(command);
    assert!(output.status.success(), "verify with environment credentials");
    outputs.push(output);

    // 4. A wrong password is refused with what to do.
    let mut command = xtask_with(empty.path(), None, &verify_args);
    command.env("XTASK_REGISTRY_USERNAME", USER).env("XTASK_REGISTRY_PASSWORD", format!("{SENTINEL}-wrong"));
    let output = run(command);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        printed(&output).contains("refused the credentials from $XTASK_REGISTRY_USERNAME/$XTASK_REGISTRY_PASSWORD"),
        "{}",
        printed(&output)
    );
    assert!(printed(&output).contains(&format!("docker login {address}")));
    outputs.push(output);

    // 5. No credentials at all.
    let output = run(xtask_with(empty.path(), None, &verify_args));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        printed(&output).contains("asks for a user name and password and none is configured"),
        "{}",
        printed(&output)
    );
    outputs.push(output);

    // 6. A failing helper that prints the secret: its output is not ours to repeat.
    let leaky = bin.join("docker-credential-leaky");
    std::fs::write(&leaky, format!("#!/bin/sh\necho 'helper error: {SENTINEL}'\nexit 1\n")).unwrap();
    Command::new("chmod").args(["+x", &leaky.display().to_string()]).status().unwrap();
    std::fs::write(helper_home.path().join("config.json"), format!(r#"{{"credHelpers":{{"{address}":"leaky"}}}}"#))
        .unwrap();
    let output = run(xtask_with(helper_home.path(), Some(&bin), &verify_args));
    assert_eq!(output.status.code(), Some(1));
    assert!(printed(&output).contains("credential helper `docker-credential-leaky`"), "{}", printed(&output));
    outputs.push(output);

    // 7. A malformed config file is bad input naming the file and line.
    std::fs::write(empty.path().join("config.json"), "{\n  \"auths\": {,\n}").unwrap();
    let output = run(xtask_with(empty.path(), None, &verify_args));
    assert_eq!(output.status.code(), Some(2));
    assert!(printed(&output).contains("config.json:2:"), "{}", printed(&output));
    outputs.push(output);

    let forbidden =
        [SENTINEL.to_string(), basic(USER, SENTINEL), base64::engine::general_purpose::STANDARD.encode(SENTINEL)];
    for (index, output) in outputs.iter().enumerate() {
        let text = printed(output);
        for secret in &forbidden {
            assert!(!text.contains(secret.as_str()), "output {index} leaks a credential:\n{text}");
        }
    }
    let tags = ureq::get(&format!("http://{address}/v2/auth/battle-service/tags/list"))
        .header("Authorization", format!("Basic {}", basic(USER, SENTINEL)))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(tags.contains("\"v3.0.0\"") && tags.contains("\"v3.1.0-arm64\"") && tags.contains("\"latest\""), "{tags}");
}
