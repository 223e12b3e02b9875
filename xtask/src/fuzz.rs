//! Property tests over arbitrary input for every parser and editor of files and registry
//! answers: none may panic, and the editors are idempotent. Two kinds of input: text built from
//! fragments of these formats, and the committed corpus (`xtask/fuzz-corpus/` and the real
//! files it names) with random edits. (Short here; raise `PROPTEST_CASES` for a longer run.)

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

/// The seed files of one format.
fn corpus(format: &str) -> Vec<&'static str> {
    match format {
        "manifest" => vec![include_str!("../../services/services.toml")],
        "changelog" => vec![include_str!("../../CHANGELOG.md"), include_str!("../fuzz-corpus/changelog-odd.md")],
        "k8s" => vec![
            include_str!("../../services/frontend/k8s/deployment.yaml"),
            include_str!("../../services/battle-service/k8s/deployment.yaml"),
            include_str!("../fuzz-corpus/k8s-multi-document.yaml"),
            include_str!("../fuzz-corpus/k8s-crlf.yaml"),
        ],
        "json" => vec![
            include_str!("../fuzz-corpus/docker-config.json"),
            include_str!("../fuzz-corpus/oci-index.json"),
            include_str!("../fuzz-corpus/oci-image.json"),
            include_str!("../fuzz-corpus/digest-file.json"),
            include_str!("../tests/data/scanners/trivy-alpine-39-high-critical.json"),
            include_str!("../tests/data/scanners/grype-image.json"),
        ],
        "dockerfile" => vec![
            include_str!("../../docker/frontend.Dockerfile"),
            include_str!("../../docker/battle-service.Dockerfile"),
            include_str!("../../services/frontend/.dockerignore"),
        ],
        _ => unreachable!("no corpus `{format}`"),
    }
}

/// One random edit of a seed.
#[derive(Debug, Clone)]
enum Edit {
    Delete { at: usize, length: usize },
    Duplicate { at: usize, length: usize },
    Insert { at: usize, piece: String },
    Replace { at: usize, byte: u8 },
    Truncate { at: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0..64usize).prop_map(|(at, length)| Edit::Delete { at, length }),
        (any::<usize>(), 0..256usize).prop_map(|(at, length)| Edit::Duplicate { at, length }),
        (any::<usize>(), texty()).prop_map(|(at, piece)| Edit::Insert { at, piece }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Replace { at, byte }),
        any::<usize>().prop_map(|at| Edit::Truncate { at }),
    ]
}

/// A seed of `format` with up to eight random edits (bytes, so the text may stop being UTF-8;
/// it is read back lossily, as a file would be).
fn mutated(format: &'static str) -> impl Strategy<Value = String> {
    (prop::sample::select(corpus(format)), prop::collection::vec(edit(), 0..8)).prop_map(|(seed, edits)| {
        let mut bytes = seed.as_bytes().to_vec();
        for edit in edits {
            let at = |position: usize| if bytes.is_empty() { 0 } else { position % (bytes.len() + 1) };
            match edit {
                Edit::Delete { at: position, length } => {
                    let start = at(position);
                    bytes.drain(start..(start + length).min(bytes.len()));
                }
                Edit::Duplicate { at: position, length } => {
                    let start = at(position);
                    let copy = bytes[start..(start + length).min(bytes.len())].to_vec();
                    bytes.splice(start..start, copy);
                }
                Edit::Insert { at: position, piece } => {
                    let start = at(position);
                    bytes.splice(start..start, piece.into_bytes());
                }
                Edit::Replace { at: position, byte } => {
                    if !bytes.is_empty() {
                        let index = position % bytes.len();
                        bytes[index] = byte;
                    }
                }
                Edit::Truncate { at: position } => bytes.truncate(at(position)),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn managed() -> crate::k8s::Managed<'static> {
    crate::k8s::Managed {
        hosts: vec!["docker.io"],
        paths: vec!["battlescope/frontend".into(), "battlescope/battle-service".into()],
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn mutated_kubernetes_manifests_edit_idempotently(text in mutated("k8s")) {
        if let Ok(once) = crate::k8s::set_images(&text, "f.yaml", &managed(), "v3.1.0") {
            let twice = crate::k8s::set_images(&once, "f.yaml", &managed(), "v3.1.0").unwrap();
            prop_assert_eq!(&twice, &once);
            // What the editor wrote passes its own check.
            let _ = crate::k8s::check(&once, "f.yaml", &managed());
        }
    }

    #[test]
    fn mutated_manifests_and_changelogs_never_panic(manifest in mutated("manifest"), changelog in mutated("changelog")) {
        if crate::manifest::Manifest::parse(&manifest, "services.toml", None).is_ok() {
            // A manifest that parses keeps parsing after the release's version edit.
            let edited = crate::manifest::with_version(&manifest, &semver::Version::new(3, 1, 0)).unwrap();
            prop_assert!(crate::manifest::Manifest::parse(&edited, "services.toml", None).is_ok());
        }
        let version = crate::tags::ReleaseVersion::parse("v3.1.0").unwrap();
        let _ = crate::changelog::unreleased_entries(&changelog);
        if let Ok(released) = crate::changelog::release(&changelog, &version, "2026-12-04", "https://x.test") {
            prop_assert!(released.contains("## [3.1.0] - 2026-12-04"));
        }
    }

    #[test]
    fn mutated_json_answers_and_reports_never_panic(text in mutated("json")) {
        let _ = crate::scan::parse_trivy(&text, "t");
        let _ = crate::scan::parse_grype(&text, "t");
        if let Ok(manifest) = crate::registry::oci::Manifest::from_bytes(text.clone().into_bytes(), None, None) {
            if let Ok(index) = manifest.index() {
                let _ = crate::registry::oci::platform_children(&index);
            }
            let _ = manifest.image();
        }
        let _ = crate::digests::parse(&text, "digests.json");
        let _ = serde_json::from_str::<crate::registry::oci::ImageConfig>(&text);
        let _ = docker_credential::get_credential_from_reader(text.as_bytes(), "127.0.0.1:5000");
    }

    #[test]
    fn mutated_dockerfiles_and_ignore_files_never_panic(text in mutated("dockerfile")) {
        let _ = crate::scan::check_dockerfile(&text);
        let _ = crate::dockerfile::base_images(&text);
        let _ = crate::dockerfile::emulated_runs(&text);
        let _ = crate::inputs::Ignore::parse(&text);
    }

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
