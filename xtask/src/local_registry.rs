//! A loopback OCI registry for trying the tool out and for tests: `--registry local` and
//! `cargo xtask local-registry start|stop`. The CNCF distribution binary (`docker-registry`)
//! when installed, else a `registry:2` container. Deletes are enabled; every request is logged.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::process::Cmd;

pub const DEFAULT_PORT: u16 = 5000;

/// Where a registry on `port` keeps its data, config, pid and log by default.
pub fn default_directory(root: &Path, port: u16) -> PathBuf {
    root.join(format!("target/xtask/registry-{port}"))
}

fn answers(address: &str) -> bool {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .http_status_as_error(false)
        .build()
        .into();
    agent.get(&format!("http://{address}/v2/")).call().is_ok_and(|response| response.status() == 200)
}

/// Starts a registry on `127.0.0.1:port` (or reuses one that answers) and returns its address.
pub fn start(root: &Path, port: u16, directory: &Path) -> anyhow::Result<String> {
    let address = format!("127.0.0.1:{port}");
    if answers(&address) {
        return Ok(address);
    }
    std::fs::create_dir_all(directory.join("data")).with_context(|| format!("create {}", directory.display()))?;
    let config = directory.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {address}\n",
            directory.join("data").display()
        ),
    )
    .with_context(|| format!("write {}", config.display()))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(directory.join("registry.log"))
        .context("open the registry log")?;
    if which::which("docker-registry").is_ok() {
        // Its own session, so Ctrl-C on the tool does not stop the registry it left running.
        let child = std::process::Command::new("setsid")
            .args(["docker-registry", "serve"])
            .arg(&config)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start docker-registry")?;
        std::fs::write(directory.join("pid"), child.id().to_string()).context("write the registry pid")?;
    } else {
        Cmd::new("docker")
            .args(["run", "--detach", "--name", &format!("xtask-registry-{port}"), "--network", "host"])
            .args(["--env", &format!("REGISTRY_HTTP_ADDR={address}"), "--env", "REGISTRY_STORAGE_DELETE_ENABLED=true"])
            .args(["--volume", &format!("{}:/var/lib/registry", directory.join("data").display()), "registry:2"])
            .read(root)
            .context("start a registry container (install docker-registry, or let the engine pull registry:2)")?;
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if answers(&address) {
            return Ok(address);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("the registry did not answer on {address} within 10 s; see {}", directory.join("registry.log").display())
}

pub fn stop(root: &Path, port: u16, directory: &Path) -> anyhow::Result<()> {
    let pid_file = directory.join("pid");
    if let Ok(pid) = std::fs::read_to_string(&pid_file) {
        let _ = Cmd::new("kill").args([pid.trim()]).read(root);
        let _ = std::fs::remove_file(&pid_file);
    } else {
        let _ = Cmd::new("docker").args(["rm", "--force", &format!("xtask-registry-{port}")]).read(root);
    }
    Ok(())
}
