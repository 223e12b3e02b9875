//! The input digest: the same for the same inputs anywhere, different for any input change.

use super::*;

fn file(path: &str, content: &str) -> ContextFile {
    ContextFile { path: path.into(), content: content.as_bytes().to_vec(), executable: false }
}

/// Every input of one build, to change one at a time.
struct Inputs {
    files: Vec<ContextFile>,
    dockerfile: String,
    bases: Vec<(String, String)>,
    args: Vec<(String, String)>,
    platforms: Vec<&'static str>,
}

impl Inputs {
    fn baseline() -> Inputs {
        Inputs {
            files: vec![file("package.json", "{}"), file("src/index.js", "console.log(1)")],
            dockerfile: "FROM node:20-alpine\n".into(),
            bases: vec![("node:20-alpine".into(), "sha256:aaaa".into())],
            args: vec![],
            platforms: vec!["linux/amd64", "linux/arm64"],
        }
    }

    fn digest(&self) -> String {
        digest(&self.files, &self.dockerfile, &self.bases, &self.args, &self.platforms)
    }
}

#[test]
fn file_order_does_not_matter() {
    let mut inputs = Inputs::baseline();
    let before = inputs.digest();
    inputs.files.reverse();
    inputs.platforms.reverse();
    assert_eq!(inputs.digest(), before);
}

#[test]
fn each_input_changes_it() {
    let before = Inputs::baseline().digest();
    type Change = fn(&mut Inputs);
    let changes: Vec<(&str, Change)> = vec![
        ("a file's content", |inputs| inputs.files[1].content = b"console.log(2)".to_vec()),
        ("a new file", |inputs| inputs.files.push(file("src/extra.js", ""))),
        ("a removed file", |inputs| {
            inputs.files.pop();
        }),
        ("a renamed file", |inputs| inputs.files[1].path = "src/main.js".into()),
        ("the executable bit", |inputs| inputs.files[1].executable = true),
        ("the Dockerfile", |inputs| inputs.dockerfile.push_str("USER 1001\n")),
        ("a base image digest", |inputs| inputs.bases[0].1 = "sha256:bbbb".into()),
        ("a build argument", |inputs| inputs.args.push(("NODE_OPTIONS".into(), "--max-old-space-size=256".into()))),
        ("the platforms", |inputs| {
            inputs.platforms.pop();
        }),
    ];
    for (what, change) in changes {
        let mut inputs = Inputs::baseline();
        change(&mut inputs);
        assert_ne!(inputs.digest(), before, "{what} must change the digest");
    }
}

#[test]
fn fields_cannot_run_together() {
    let one = digest(&[file("ab", "c")], "", &[], &[], &[]);
    let other = digest(&[file("a", "bc")], "", &[], &[], &[]);
    assert_ne!(one, other);
}

#[test]
fn dockerignore_as_docker_reads_it() {
    let ignore = Ignore::parse("# comment\nnode_modules\nk8s/\n*.md\n!README.md\n**/*.test.js\n").unwrap();
    for excluded in
        ["node_modules", "node_modules/x/index.js", "k8s/deployment.yaml", "NOTES.md", "src/a.test.js", "a.test.js"]
    {
        assert!(ignore.excludes(excluded), "{excluded}");
    }
    for kept in ["README.md", "src/index.js", "src/node_modules.js", "docs/guide.md"] {
        assert!(!ignore.excludes(kept), "{kept}");
    }
}

#[test]
fn stable_across_checkouts_and_blind_to_ignored_files() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let here = context_files(root, "services/battle-service").unwrap();
    let copy = tempfile::tempdir().unwrap();
    let target = copy.path().join("services/battle-service");
    std::fs::create_dir_all(target.join("src")).unwrap();
    for file in &here {
        std::fs::create_dir_all(target.join(&file.path).parent().unwrap()).unwrap();
        std::fs::write(target.join(&file.path), &file.content).unwrap();
    }
    std::fs::write(
        target.join(".dockerignore"),
        std::fs::read(root.join("services/battle-service/.dockerignore")).unwrap(),
    )
    .unwrap();
    // Ignored files do not count, whatever they hold.
    std::fs::create_dir_all(target.join("k8s")).unwrap();
    std::fs::write(target.join("k8s/other.yaml"), "kind: Other").unwrap();
    let there = context_files(copy.path(), "services/battle-service").unwrap();
    let digest_of = |files: &[ContextFile]| digest(files, "FROM x:1\n", &[], &[], &["linux/amd64"]);
    assert_eq!(digest_of(&here), digest_of(&there), "another path, other time stamps, same digest");
    assert!(here.iter().all(|file| !file.path.starts_with("k8s/")), "k8s/ is in .dockerignore");
}
