//! Build inputs and their digest (build avoidance): a service's build context as docker sees it
//! (`.dockerignore` applied), its Dockerfile, the digests its base images resolve to, its build
//! arguments and platforms. Equal digests mean the build would make the same image, so a
//! release reuses the one already in the registry instead of building again.

use std::path::Path;

use anyhow::Context;
use globset::{GlobBuilder, GlobMatcher};
use sha2::{Digest, Sha256};

/// The annotation (on the index) that records the input digest of a build.
pub const ANNOTATION: &str = "io.battlescope.xtask.input-digest";

/// `.dockerignore` rules, as docker applies them: paths relative to the context, `*` within one
/// path segment, `**` across segments, a matched directory takes its contents, `!` re-includes,
/// the last matching rule wins.
pub struct Ignore {
    rules: Vec<(GlobMatcher, bool)>,
}

impl Ignore {
    pub fn parse(text: &str) -> anyhow::Result<Ignore> {
        let mut rules = Vec::new();
        for line in text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')) {
            let (include, pattern) = match line.strip_prefix('!') {
                Some(pattern) => (true, pattern.trim()),
                None => (false, line),
            };
            let pattern = pattern.trim_start_matches("./").trim_start_matches('/').trim_end_matches('/');
            for candidate in [pattern.to_string(), format!("{pattern}/**")] {
                let glob = GlobBuilder::new(&candidate)
                    .literal_separator(true)
                    .build()
                    .with_context(|| format!(".dockerignore: bad pattern `{line}`"))?;
                rules.push((glob.compile_matcher(), include));
            }
        }
        Ok(Ignore { rules })
    }

    pub fn excludes(&self, relative: &str) -> bool {
        let mut excluded = false;
        for (glob, include) in &self.rules {
            if glob.is_match(relative) {
                excluded = !include;
            }
        }
        excluded
    }
}

/// One file of a build context: path relative to the context, content, executable bit.
pub struct ContextFile {
    pub path: String,
    pub content: Vec<u8>,
    pub executable: bool,
}

/// The files docker would send for `context` (relative to `root`), `.dockerignore` applied,
/// sorted by path.
pub fn context_files(root: &Path, context: &str) -> anyhow::Result<Vec<ContextFile>> {
    let base = root.join(context);
    let ignore = match std::fs::read_to_string(base.join(".dockerignore")) {
        Ok(text) => Ignore::parse(&text).with_context(|| format!("{context}/.dockerignore"))?,
        Err(_) => Ignore::parse("")?,
    };
    let mut files = Vec::new();
    let mut pending = vec![String::new()];
    while let Some(directory) = pending.pop() {
        let full = if directory.is_empty() { base.clone() } else { base.join(&directory) };
        for entry in std::fs::read_dir(&full).with_context(|| format!("read {}", full.display()))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_string();
            let relative = if directory.is_empty() { name } else { format!("{directory}/{name}") };
            if ignore.excludes(&relative) {
                continue;
            }
            let metadata = entry.metadata()?;
            if metadata.is_dir() {
                pending.push(relative);
            } else {
                use std::os::unix::fs::PermissionsExt;
                let content =
                    std::fs::read(entry.path()).with_context(|| format!("read {}", entry.path().display()))?;
                files.push(ContextFile {
                    path: relative,
                    content,
                    executable: metadata.permissions().mode() & 0o111 != 0,
                });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// The digest of everything that decides what a build makes. Paths are relative and sorted,
/// and no time stamp takes part, so it is the same on every machine and in every run.
pub fn digest(
    files: &[ContextFile],
    dockerfile: &str,
    bases: &[(String, String)],
    build_args: &[(String, String)],
    platforms: &[&str],
) -> String {
    let mut hasher = Sha256::new();
    let mut field = |kind: &str, name: &str, value: &[u8]| {
        // Length-prefixed, so no two different inputs can hash alike by running together.
        for part in [kind.as_bytes(), name.as_bytes(), value] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
    };
    let mut files: Vec<&ContextFile> = files.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    for file in files {
        field(if file.executable { "file+x" } else { "file" }, &file.path, &Sha256::digest(&file.content));
    }
    field("dockerfile", "", dockerfile.as_bytes());
    let mut bases = bases.to_vec();
    bases.sort();
    for (name, digest) in bases {
        field("base", &name, digest.as_bytes());
    }
    let mut build_args = build_args.to_vec();
    build_args.sort();
    for (name, value) in build_args {
        field("arg", &name, value.as_bytes());
    }
    let mut platforms = platforms.to_vec();
    platforms.sort_unstable();
    for platform in platforms {
        field("platform", platform, b"");
    }
    let hash = hasher.finalize();
    format!("sha256:{}", hash.iter().map(|byte| format!("{byte:02x}")).collect::<String>())
}

#[cfg(test)]
mod tests;
