//! A bounded pool for tasks that add tasks: a release's builds, each of which, once done, adds
//! its service's scan and SBOM, so that every service moves on as soon as it can while no more
//! than `jobs` tasks run at once.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

struct Queue<T> {
    waiting: VecDeque<T>,
    running: usize,
    errors: Vec<anyhow::Error>,
    done: usize,
    busy: Duration,
}

/// What a run did: its failures, and how much work it overlapped.
pub struct Outcome {
    pub errors: Vec<anyhow::Error>,
    /// Tasks finished (successfully or not).
    pub tasks: usize,
    /// The sum of every task's own time; against the wall time, the overlap gained.
    pub busy: Duration,
    pub wall: Duration,
}

/// Runs `initial` and every task they add on `jobs` threads. Tasks added by a finished task run
/// before the remaining initial ones (a started service finishes first). After the first
/// failure no new task starts; the ones running finish.
pub fn run<T: Send>(jobs: usize, initial: Vec<T>, work: impl Fn(T) -> anyhow::Result<Vec<T>> + Sync) -> Outcome {
    let started = Instant::now();
    let queue =
        Mutex::new(Queue { waiting: initial.into(), running: 0, errors: Vec::new(), done: 0, busy: Duration::ZERO });
    let changed = Condvar::new();
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let task = {
                        let mut state = queue.lock().unwrap();
                        loop {
                            let stopping = !state.errors.is_empty() || crate::process::interrupted();
                            if !stopping && let Some(task) = state.waiting.pop_front() {
                                state.running += 1;
                                break task;
                            }
                            if stopping || state.running == 0 {
                                changed.notify_all();
                                return;
                            }
                            state = changed.wait(state).unwrap();
                        }
                    };
                    let task_started = Instant::now();
                    let outcome = work(task);
                    let mut state = queue.lock().unwrap();
                    state.running -= 1;
                    state.done += 1;
                    state.busy += task_started.elapsed();
                    match outcome {
                        Ok(added) => {
                            for task in added.into_iter().rev() {
                                state.waiting.push_front(task);
                            }
                        }
                        Err(error) => state.errors.push(error),
                    }
                    changed.notify_all();
                }
            });
        }
    });
    let mut queue = queue.into_inner().unwrap();
    // A signal between tasks fails none of them, yet leaves work undone: that is a failure too.
    if queue.errors.is_empty() && !queue.waiting.is_empty() {
        queue.errors.push(crate::process::Interrupted.into());
    }
    Outcome { errors: queue.errors, tasks: queue.done, busy: queue.busy, wall: started.elapsed() }
}

impl Outcome {
    /// `Ok` when every task succeeded; else one error listing every failure after `heading`,
    /// whose chain is the first failure's (so an interruption still exits 130).
    pub fn into_result(self, heading: String) -> anyhow::Result<()> {
        let mut errors = self.errors.into_iter();
        let Some(first) = errors.next() else { return Ok(()) };
        let rest: Vec<String> = errors.map(|error| format!("\n{error:#}")).collect();
        Err(first.context(format!("{heading}{}", rest.concat())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn added_tasks_run_and_the_bound_holds() {
        let (running, most, done) = (AtomicUsize::new(0), AtomicUsize::new(0), Mutex::new(Vec::new()));
        let outcome = run(2, vec![("build", 1), ("build", 2), ("build", 3)], |(kind, service)| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(20));
            running.fetch_sub(1, Ordering::SeqCst);
            done.lock().unwrap().push((kind, service));
            Ok(if kind == "build" { vec![("scan", service), ("sbom", service)] } else { Vec::new() })
        });
        assert!(outcome.errors.is_empty());
        assert_eq!(outcome.tasks, 9);
        assert!(outcome.busy > outcome.wall, "two at a time overlap");
        assert_eq!(most.load(Ordering::SeqCst), 2, "never more than two at once");
        let done = done.into_inner().unwrap();
        assert_eq!(done.len(), 9);
        for service in 1..=3 {
            let position = |kind| done.iter().position(|task| *task == (kind, service)).unwrap();
            assert!(position("build") < position("scan") && position("build") < position("sbom"));
        }
    }

    #[test]
    fn every_failure_is_listed_and_the_first_keeps_its_kind() {
        let outcome = run(1, vec![1, 2], |task| {
            if task == 1 { Err(crate::process::Interrupted.into()) } else { anyhow::bail!("task {task} failed") }
        });
        assert_eq!(outcome.errors.len(), 1, "the failure stops the rest");
        let error = outcome.into_result("1 of 2 failed".into()).unwrap_err();
        assert_eq!(crate::error::exit_code(&error), 130);
        assert!(format!("{error:#}").starts_with("1 of 2 failed"), "{error:#}");
    }

    #[test]
    fn no_task_starts_after_a_failure() {
        let started = AtomicUsize::new(0);
        let outcome = run(1, vec![1, 2, 3], |task| {
            started.fetch_add(1, Ordering::SeqCst);
            if task == 1 { anyhow::bail!("task {task} failed") } else { Ok(Vec::new()) }
        });
        assert_eq!(outcome.errors.len(), 1);
        assert_eq!(started.load(Ordering::SeqCst), 1);
    }
}
