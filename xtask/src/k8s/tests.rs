//! Golden edits of Kubernetes YAML: only the intended tokens change.

use super::*;

fn managed() -> Managed<'static> {
    Managed {
        hosts: vec!["docker.io"],
        paths: vec!["battlescope/battle-service".into(), "battlescope/frontend".into()],
    }
}

fn edit(text: &str) -> String {
    set_images(text, "deployment.yaml", &managed(), "v3.1.0").unwrap()
}

#[test]
fn the_repository_deployment_changes_only_its_tag() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let before = std::fs::read_to_string(root.join("services/battle-service/k8s/deployment.yaml")).unwrap();
    let after = edit(&before);
    assert_eq!(
        after,
        before.replace("docker.io/battlescope/battle-service:v3.0.0", "docker.io/battlescope/battle-service:v3.1.0")
    );
}

#[test]
fn policy_and_secret_are_added_and_everything_else_is_kept() {
    let before = r#"# A comment that stays.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: battle-service   # trailing comment
spec:
  template:
    spec:
      containers:
      - name: battle-service
        image: "battlescope/battle-service:v3.0.0"  # pinned by the release
        ports:
        - containerPort: 3000
      - name: sidecar
        image: 'envoyproxy/envoy:v1.30.0'
        imagePullPolicy: Always
---
apiVersion: batch/v1
kind: CronJob
spec:
  jobTemplate:
    spec:
      template:
        spec:
          imagePullSecrets:
            - name: other-secret
          containers:
            - image: docker.io/battlescope/frontend:latest
              imagePullPolicy: Always
              name: warmup
"#;
    let expected = r#"# A comment that stays.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: battle-service   # trailing comment
spec:
  template:
    spec:
      imagePullSecrets:
      - name: docker-hub-creds
      containers:
      - name: battle-service
        image: "battlescope/battle-service:v3.1.0"  # pinned by the release
        imagePullPolicy: IfNotPresent
        ports:
        - containerPort: 3000
      - name: sidecar
        image: 'envoyproxy/envoy:v1.30.0'
        imagePullPolicy: Always
---
apiVersion: batch/v1
kind: CronJob
spec:
  jobTemplate:
    spec:
      template:
        spec:
          imagePullSecrets:
            - name: docker-hub-creds
            - name: other-secret
          containers:
            - image: docker.io/battlescope/frontend:v3.1.0
              imagePullPolicy: IfNotPresent
              name: warmup
"#;
    assert_eq!(edit(before), expected);
    assert_eq!(edit(expected), expected, "a second run changes nothing");
}

#[test]
fn windows_line_endings_anchors_and_digests() {
    let before = "spec:\r\n  containers:\r\n  - name: a\r\n    image: &img battlescope/frontend:v3.0.0@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n    imagePullPolicy: IfNotPresent\r\n  imagePullSecrets:\r\n  - name: docker-hub-creds\r\n";
    let after = edit(before);
    assert_eq!(
        after,
        before.replace(
            "battlescope/frontend:v3.0.0@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "battlescope/frontend:v3.1.0"
        )
    );
}

#[test]
fn a_file_without_a_managed_image_is_an_error() {
    let message = set_images("spec:\n  containers:\n  - image: nginx:1.27\n", "x.yaml", &managed(), "v3.1.0")
        .unwrap_err()
        .to_string();
    assert!(message.contains("x.yaml: no image of a managed service"), "{message}");
}

#[test]
fn an_untagged_image_gets_the_tag() {
    let after = edit(
        "spec:\n  imagePullSecrets:\n  - name: docker-hub-creds\n  containers:\n  - image: battlescope/frontend\n    imagePullPolicy: IfNotPresent\n",
    );
    assert!(after.contains("image: battlescope/frontend:v3.1.0\n"), "{after}");
}

#[test]
fn the_repository_manifests_meet_r12() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let text = std::fs::read_to_string(root.join("services/frontend/k8s/deployment.yaml")).unwrap();
    assert_eq!(check(&text, "deployment.yaml", &managed()), Vec::<String>::new());
}

#[test]
fn r12_problems_are_named_with_their_line() {
    let text = "spec:\n  containers:\n  - name: a\n    image: battlescope/frontend:latest\n    imagePullPolicy: Always\n  - name: b\n    image: battlescope/battle-service\n";
    let problems = check(text, "d.yaml", &managed());
    assert!(
        problems.contains(
            &"d.yaml:4: `battlescope/frontend:latest` uses `latest`, never for production (R12): pin a version"
                .to_string()
        ),
        "{problems:#?}"
    );
    assert!(problems.contains(&"d.yaml:4: imagePullPolicy is Always, not IfNotPresent".to_string()), "{problems:#?}");
    assert!(problems.contains(&"d.yaml:7: `battlescope/battle-service` has no tag, which means `latest`: pin a version (`cargo xtask release` sets it)".to_string()), "{problems:#?}");
    assert!(problems.contains(&"d.yaml:7: imagePullPolicy is unset, not IfNotPresent".to_string()), "{problems:#?}");
    assert!(
        problems.iter().any(|problem| problem.starts_with("d.yaml:4: its pod has no `imagePullSecrets`")),
        "{problems:#?}"
    );
    assert!(
        problems.iter().any(|problem| problem.starts_with("d.yaml:4: its pod needs a securityContext")),
        "{problems:#?}"
    );
}

/// Found by the corpus fuzzer (fuzz.rs): a policy key whose value is a block was rewritten into
/// `imagePullPolicy:IfNotPresent`, which is no key at all, so a second run added another one.
#[test]
fn a_pull_policy_without_a_value_is_refused_with_its_line() {
    let text = "spec:\n  containers:\n    - name: web\n      image: docker.io/battlescope/frontend:v3.0.0\n      imagePullPolicy:\n        - name: http\n";
    let managed = Managed { hosts: vec!["docker.io"], paths: vec!["battlescope/frontend".into()] };
    let error = set_images(text, "deployment.yaml", &managed, "v3.1.0").unwrap_err().to_string();
    assert!(error.contains("deployment.yaml:5: `imagePullPolicy:` has no single value"), "{error}");
    // Also found by the fuzzer: text after a quoted value stayed behind the new one.
    let junk = text.replace("imagePullPolicy:\n        - name: http\n", "imagePullPolicy: ''ext:\n");
    let error = set_images(&junk, "deployment.yaml", &managed, "v3.1.0").unwrap_err().to_string();
    assert!(error.contains("deployment.yaml:5: `imagePullPolicy:` has no single value"), "{error}");
    let junk = text.replace("docker.io/battlescope/frontend:v3.0.0", "'docker.io/battlescope/frontend:v3.0.0'x");
    let error = set_images(&junk, "deployment.yaml", &managed, "v3.1.0").unwrap_err().to_string();
    assert!(error.contains("deployment.yaml:4: text follows the image's value"), "{error}");
}

/// Found by the corpus fuzzer: lines added above an image made the editor visit it again, and
/// where the added key could not be found again (a pod spec opening a list item) it added it
/// forever, until memory ran out. Each image is now edited once, and such a spec is refused.
#[test]
fn an_image_is_edited_once_and_a_list_item_pod_spec_is_refused() {
    let managed = Managed { hosts: vec!["docker.io"], paths: vec!["battlescope/frontend".into()] };
    let odd = "spec:\n  - containers:\n    - name: web\n      image: docker.io/battlescope/frontend:v3.0.0\n";
    let error = set_images(odd, "deployment.yaml", &managed, "v3.1.0").unwrap_err().to_string();
    assert!(error.contains("deployment.yaml:2: `containers:` opens a list item"), "{error}");

    let two = "spec:\n  containers:\n    - name: a\n      image: docker.io/battlescope/frontend:v3.0.0\n    - name: b\n      image: docker.io/battlescope/frontend:v3.0.0\n";
    let edited = set_images(two, "deployment.yaml", &managed, "v3.1.0").unwrap();
    assert_eq!(edited.matches("imagePullSecrets:").count(), 1, "{edited}");
    assert_eq!(edited.matches("imagePullPolicy: IfNotPresent").count(), 2, "{edited}");
    assert_eq!(set_images(&edited, "deployment.yaml", &managed, "v3.1.0").unwrap(), edited);
}

/// Found by the corpus fuzzer: the spaces between a plain value and its comment were taken as
/// part of the value, so a correct policy was rewritten (and the spaces lost).
#[test]
fn spaces_before_a_comment_are_not_part_of_the_value() {
    let text = "spec:\n  imagePullSecrets:\n    - name: docker-hub-creds\n  containers:\n    - name: web\n      image: docker.io/battlescope/frontend:v3.0.0   # the release sets this\n      imagePullPolicy: IfNotPresent   # keep\n";
    let managed = Managed { hosts: vec!["docker.io"], paths: vec!["battlescope/frontend".into()] };
    let edited = set_images(text, "deployment.yaml", &managed, "v3.1.0").unwrap();
    assert_eq!(edited, text.replace(":v3.0.0", ":v3.1.0"));
}

/// Found by the 5,000,000-case corpus fuzz: a bare carriage return at the end of a file made the
/// first run end lines with LF and the second with CRLF. One kind of line ending is kept; mixed
/// ones are refused.
#[test]
fn mixed_line_endings_are_refused_and_one_kind_is_kept() {
    let managed = Managed { hosts: vec!["docker.io"], paths: vec!["battlescope/frontend".into()] };
    let text = "spec:\n  containers:\n    - name: web\n      image: docker.io/battlescope/frontend:v3.0.0\n";
    for mixed in [text.replacen('\n', "\r\n", 1), format!("{text}\r"), text.replacen('\n', "\r", 1)] {
        let error = set_images(&mixed, "deployment.yaml", &managed, "v3.1.0").unwrap_err().to_string();
        assert!(error.contains("deployment.yaml: mixes line endings"), "{mixed:?}: {error}");
    }
    let crlf = text.replace('\n', "\r\n");
    let edited = set_images(&crlf, "deployment.yaml", &managed, "v3.1.0").unwrap();
    assert_eq!(edited.matches("\r\n").count(), edited.matches('\n').count(), "{edited:?}");
    let unterminated = text.trim_end();
    let edited = set_images(unterminated, "deployment.yaml", &managed, "v3.1.0").unwrap();
    assert!(!edited.ends_with('\n') && edited.contains(":v3.1.0"), "{edited:?}");
}
