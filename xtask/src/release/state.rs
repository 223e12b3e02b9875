//! The release's state on disk: a lock (one release at a time, a dead holder detected) and a
//! journal (the plan and the steps finished), under `target/xtask/release/`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::Plan;

pub const RESUME_COMMAND: &str = "cargo xtask release --resume";

/// Where releases keep their journal, lock and evidence, relative to the repository root.
pub const DIRECTORY: &str = "target/xtask/release";

pub struct Paths {
    pub directory: PathBuf,
    pub lock: PathBuf,
    pub journal: PathBuf,
}

impl Paths {
    pub fn new(root: &Path) -> Paths {
        let directory = root.join(DIRECTORY);
        Paths { lock: directory.join("lock.json"), journal: directory.join("journal.json"), directory }
    }

    /// Where a finished release's journal is kept.
    pub fn record(&self, version: &str) -> PathBuf {
        self.directory.join(format!("{version}.json"))
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct LockFile {
    pid: u32,
    version: String,
}

/// Held while a release runs; removed when dropped (a killed process leaves it behind, and the
/// next start explains it).
pub struct Lock {
    path: PathBuf,
}

fn alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

impl Lock {
    /// Takes the lock. A live holder refuses; a dead one is explained (with `--resume` it is
    /// taken over).
    pub fn acquire(paths: &Paths, version: &str, resuming: bool) -> anyhow::Result<Lock> {
        if let Ok(text) = std::fs::read_to_string(&paths.lock) {
            if let Ok(held) = serde_json::from_str::<LockFile>(&text) {
                if alive(held.pid) && held.pid != std::process::id() {
                    bail!(
                        "a release of {} is in progress (pid {}): wait for it to finish; one release runs at a time",
                        held.version,
                        held.pid
                    );
                }
                if !resuming {
                    bail!(
                        "a release of {} stopped without finishing (pid {} is gone, its lock {} remains): run `{RESUME_COMMAND}` to finish it",
                        held.version,
                        held.pid,
                        paths.lock.display()
                    );
                }
            }
        }
        std::fs::create_dir_all(&paths.directory).with_context(|| format!("create {}", paths.directory.display()))?;
        let lock = LockFile { pid: std::process::id(), version: version.to_string() };
        std::fs::write(&paths.lock, serde_json::to_string(&lock)?)
            .with_context(|| format!("write {}", paths.lock.display()))?;
        Ok(Lock { path: paths.lock.clone() })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    pub plan: Plan,
    /// Ids of the finished steps, in the order they finished.
    pub done: Vec<String>,
    /// What the scan gate found (for the checklist).
    #[serde(default)]
    pub scan_summary: Option<String>,
    /// Evidence kept with the release: scan reports, SBOMs.
    #[serde(default)]
    pub attachments: Vec<String>,
}

impl Journal {
    pub fn is_done(&self, id: &str) -> bool {
        self.done.iter().any(|done| done == id)
    }

    pub fn new(plan: Plan) -> Journal {
        Journal { plan, done: Vec::new(), scan_summary: None, attachments: Vec::new() }
    }

    /// Forgets an unfinished release that cannot be resumed (a refused gate).
    pub fn discard(paths: &Paths) {
        let _ = std::fs::remove_file(&paths.journal);
    }

    pub fn load(paths: &Paths) -> anyhow::Result<Option<Journal>> {
        match std::fs::read_to_string(&paths.journal) {
            Ok(text) => Ok(Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("read the release journal {}", paths.journal.display()))?,
            )),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error).with_context(|| format!("read {}", paths.journal.display())),
        }
    }

    /// Records a finished step, atomically (write aside, then rename).
    pub fn finish(&mut self, paths: &Paths, id: &str) -> anyhow::Result<()> {
        if !self.is_done(id) {
            self.done.push(id.to_string());
        }
        self.save(paths)
    }

    pub fn save(&self, paths: &Paths) -> anyhow::Result<()> {
        std::fs::create_dir_all(&paths.directory)?;
        let aside = paths.journal.with_extension("json.tmp");
        std::fs::write(&aside, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("write {}", aside.display()))?;
        std::fs::rename(&aside, &paths.journal).with_context(|| format!("write {}", paths.journal.display()))
    }
}
