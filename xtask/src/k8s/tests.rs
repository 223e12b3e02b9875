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
