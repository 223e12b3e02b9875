//! External commands as values: a [`Cmd`] is built by pure code (so plans can print and
//! compare it), then run here with its output captured to a log, or read.

use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// Set by SIGINT or SIGTERM: running commands are stopped and the work in progress ends
/// cleanly (a release keeps its journal and can be resumed).
pub fn interrupted() -> bool {
    interrupt_flag().load(Ordering::SeqCst)
}

fn interrupt_flag() -> &'static Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Catches SIGINT and SIGTERM: the first sets the flag (clean stop), a second ends the process
/// at once.
pub fn install_signal_handlers() -> anyhow::Result<()> {
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, interrupt_flag().clone())?;
        signal_hook::flag::register(signal, interrupt_flag().clone())?;
    }
    Ok(())
}

/// The error of work stopped by a signal: exit code 130.
#[derive(Debug)]
pub struct Interrupted;

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("interrupted by a signal")
    }
}

impl std::error::Error for Interrupted {}

/// One program and its arguments: never a shell string, so no value is ever re-parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    /// Extra environment, shown in the command line (so never a secret).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<(String, String)>,
}

impl Cmd {
    pub fn new(program: impl Into<String>) -> Cmd {
        Cmd { program: program.into(), args: Vec::new(), env: Vec::new() }
    }

    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Cmd {
        self.env.push((name.into(), value.into()));
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Cmd {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    fn command(&self, cwd: &Path) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .current_dir(cwd)
            .stdin(Stdio::null());
        command
    }

    /// Runs to completion and returns stdout, trimmed. A failure carries the command line and
    /// the tail of its stderr.
    pub fn read(&self, cwd: &Path) -> anyhow::Result<String> {
        let output = self.command(cwd).output().with_context(|| format!("run `{self}`"))?;
        if !output.status.success() {
            bail!("`{self}` failed ({}):\n{}", output.status, tail(&String::from_utf8_lossy(&output.stderr), 20));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// Runs to completion, writing stdout and stderr line by line to `log` and handing each line
    /// to `on_line` (progress). A failure carries the command line, the log path and its tail.
    pub fn run_logged(&self, cwd: &Path, log: &Path, mut on_line: impl FnMut(&str)) -> anyhow::Result<()> {
        let mut log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("open {}", log.display()))?;
        writeln!(log_file, "$ {self}")?;
        // Its own process group, so a stop reaches its children too (docker runs buildx as one).
        let mut child =
            self.command(cwd).process_group(0).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().with_context(
                || format!("start `{self}` (is `{}` installed? `cargo xtask doctor` checks)", self.program),
            )?;
        let (sender, receiver) = mpsc::channel::<String>();
        let readers = [
            child.stdout.take().map(|out| Box::new(out) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|err| Box::new(err) as Box<dyn std::io::Read + Send>),
        ];
        let threads: Vec<_> = readers
            .into_iter()
            .flatten()
            .map(|stream| {
                let sender = sender.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(stream).lines().map_while(Result::ok) {
                        if sender.send(line).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        drop(sender);
        let mut recent: std::collections::VecDeque<String> = std::collections::VecDeque::new();
        loop {
            match receiver.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    writeln!(log_file, "{line}")?;
                    on_line(&line);
                    recent.push_back(line);
                    if recent.len() > 30 {
                        recent.pop_front();
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) if interrupted() => {
                    // Stop the child and its process group rather than leave them running.
                    stop_group(&mut child);
                    let _ = child.kill();
                    let _ = child.wait();
                    writeln!(log_file, "(stopped: interrupted by a signal)")?;
                    return Err(anyhow::Error::new(Interrupted).context(format!("`{self}` stopped")));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        for thread in threads {
            let _ = thread.join();
        }
        let status = child.wait().with_context(|| format!("wait for `{self}`"))?;
        if !status.success() {
            let recent: Vec<String> = recent.into();
            bail!("`{self}` failed ({status}); full log: {}\n{}", log.display(), indent(&recent.join("\n")));
        }
        Ok(())
    }
}

/// SIGINT to a child's process group (buildx cancels a build on it, as on Ctrl-C), then
/// SIGKILL to what is left after five seconds. The child itself is reaped along the way, or
/// its zombie would keep the group alive.
fn stop_group(child: &mut std::process::Child) {
    let group = format!("-{}", child.id());
    let _ = Command::new("kill").args(["-INT", "--", &group]).status();
    for _ in 0..50 {
        let _ = child.try_wait();
        let alive = Command::new("kill")
            .args(["-0", "--", &group])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !alive {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
}

impl fmt::Display for Cmd {
    /// As a person would type it in a POSIX shell.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, value) in &self.env {
            write!(f, "{name}={} ", shell_quote(value))?;
        }
        f.write_str(&shell_quote(&self.program))?;
        for arg in &self.args {
            write!(f, " {}", shell_quote(arg))?;
        }
        Ok(())
    }
}

fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b));
    if plain { word.to_string() } else { format!("'{}'", word.replace('\'', r"'\''")) }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    indent(&all[all.len().saturating_sub(lines)..].join("\n"))
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("    {line}")).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_what_a_shell_would_split() {
        let cmd = Cmd::new("docker").args([
            "buildx",
            "build",
            "--build-arg",
            "CREATED=2026-01-01T00:00:00Z",
            "it's here",
            "",
        ]);
        assert_eq!(
            cmd.to_string(),
            r#"docker buildx build --build-arg CREATED=2026-01-01T00:00:00Z 'it'\''s here' ''"#
        );
    }

    #[test]
    fn failures_name_the_command_and_show_the_tail() {
        let directory = tempfile::tempdir().unwrap();
        let log = directory.path().join("log");
        let mut seen = Vec::new();
        let error = Cmd::new("sh")
            .args(["-c", "echo one; echo two >&2; exit 3"])
            .run_logged(directory.path(), &log, |line| seen.push(line.to_string()))
            .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("`sh -c 'echo one; echo two >&2; exit 3'` failed"), "{message}");
        assert!(message.contains("    two"), "{message}");
        seen.sort();
        assert_eq!(seen, ["one", "two"]);
        assert!(std::fs::read_to_string(&log).unwrap().contains("two"));
        assert_eq!(Cmd::new("sh").args(["-c", "echo ' hi '"]).read(directory.path()).unwrap(), "hi");
    }
}
