//! Property tests over arbitrary input for every parser and editor of files and registry
//! answers: none may panic, and the editors are idempotent. (Short here; raise
//! `PROPTEST_CASES` for a longer run.)

use proptest::prelude::*;

/// Text that looks like the files these parsers read: YAML, TOML, Markdown, JSON fragments,
/// odd whitespace, line endings and non-ASCII.
fn texty() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "image: ",
        "battlescope/frontend:v3.0.0",
        "docker.io/battlescope/battle-service",
        "\"",
        "'",
        "#",
        " ",
        "  ",
        "- ",
        "\n",
        "\r\n",
        "\t",
        ":",
        "containers:",
        "imagePullSecrets:",
        "imagePullPolicy: Always",
        "&a ",
        "*a",
        "{",
        "}",
        "[",
        "]",
        "---",
        "## [Unreleased]",
        "## [1.0.0] - 2026-01-01",
        "[unreleased]: x",
        "- entry",
        "é",
        "名",
        "@sha256:",
        "[release]",
        "version = ",
        "[[service]]",
        "name = ",
        "=",
        ",",
        "Bearer realm=",
        "\\",
        "\0",
    ]);
    prop::collection::vec(pieces, 0..60).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn kubernetes_editor_never_panics_and_is_idempotent(text in texty()) {
        let managed = crate::k8s::Managed { hosts: vec!["docker.io"], paths: vec!["battlescope/frontend".into(), "battlescope/battle-service".into()] };
        if let Ok(once) = crate::k8s::set_images(&text, "f.yaml", &managed, "v3.1.0") {
            let twice = crate::k8s::set_images(&once, "f.yaml", &managed, "v3.1.0").unwrap();
            prop_assert_eq!(&twice, &once);
        }
        let _ = crate::k8s::check(&text, "f.yaml", &managed);
    }

    #[test]
    fn changelog_editor_never_panics(text in texty()) {
        let version = crate::tags::ReleaseVersion::parse("v3.1.0").unwrap();
        let _ = crate::changelog::unreleased_entries(&text);
        if let Ok(released) = crate::changelog::release(&text, &version, "2026-12-04", "https://x.test") {
            prop_assert!(released.contains("## [3.1.0] - 2026-12-04"));
        }
    }

    #[test]
    fn manifest_parser_never_panics(text in texty()) {
        let _ = crate::manifest::Manifest::parse(&text, "services.toml", None);
        let _ = crate::manifest::with_version(&text, &semver::Version::new(3, 1, 0));
    }

    #[test]
    fn reference_tag_and_challenge_parsers_never_panic(text in texty()) {
        let _ = crate::reference::ImageRef::parse(&text);
        let _ = crate::tags::ReleaseVersion::parse(&text);
        let _ = crate::tags::release_version_of(&text);
        let _ = crate::registry::auth::parse_challenge(&text);
        let _ = crate::cleanup::unix_seconds(&text);
    }

    #[test]
    fn report_and_manifest_readers_never_panic(text in texty()) {
        let _ = crate::scan::parse_trivy(&text, "t");
        let _ = crate::scan::parse_grype(&text, "t");
        let _ = crate::registry::oci::Manifest::from_bytes(text.clone().into_bytes(), None, None);
        let _ = crate::scan::check_dockerfile(&text);
        let _ = crate::dockerfile::base_images(&text);
        let _ = crate::dockerfile::emulated_runs(&text);
        let _ = crate::inputs::Ignore::parse(&text);
    }
}
