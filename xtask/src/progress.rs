//! Progress for long parallel work: one spinner per task on a terminal, plain timestamped
//! lines elsewhere (CI logs), and messages that never tear through a bar.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bars: Option<MultiProgress>,
}

pub struct Task {
    name: String,
    bar: Option<ProgressBar>,
    started: Instant,
}

impl Progress {
    /// Bars only on an interactive terminal outside CI.
    pub fn new() -> Progress {
        let interactive = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        Progress { bars: interactive.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())) }
    }

    pub fn start(&self, name: &str, what: &str) -> Task {
        let bar = self.bars.as_ref().map(|bars| {
            let bar = bars.add(ProgressBar::new_spinner());
            bar.set_style(ProgressStyle::with_template("{spinner} {prefix:.bold} {elapsed:>4} {wide_msg}").unwrap());
            bar.set_prefix(name.to_string());
            bar.set_message(what.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        if bar.is_none() {
            eprintln!("{name}: {what}");
        }
        Task { name: name.to_string(), bar, started: Instant::now() }
    }
}

impl Task {
    /// The latest thing the task is doing (shown on the bar; plain mode stays quiet).
    pub fn update(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.to_string());
        }
    }

    /// Something worth a line of its own in every mode (a retry, a warning).
    pub fn note(&self, message: &str) {
        let line = format!("{}: {message}", self.name);
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    pub fn finish(&self, outcome: &str) {
        let line = format!("{}: {outcome} in {:.1}s", self.name, self.started.elapsed().as_secs_f64());
        match &self.bar {
            Some(bar) => bar.finish_with_message(outcome.to_string()),
            None => eprintln!("{line}"),
        }
    }
}

/// A phase of work: a `::group::` under GitHub Actions, a heading elsewhere, and its duration
/// when it ends.
pub struct Section {
    name: String,
    started: Instant,
    github: bool,
}

impl Section {
    pub fn start(name: &str) -> Section {
        let github = std::env::var("GITHUB_ACTIONS").is_ok_and(|value| value == "true");
        if github {
            eprintln!("::group::{name}");
        } else {
            eprintln!("==> {name}");
        }
        Section { name: name.to_string(), started: Instant::now(), github }
    }
}

impl Drop for Section {
    fn drop(&mut self) {
        if self.github {
            eprintln!("::endgroup::");
        }
        eprintln!("    {} took {:.1}s", self.name, self.started.elapsed().as_secs_f64());
    }
}
