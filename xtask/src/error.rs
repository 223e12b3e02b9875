//! Error kinds that decide the exit code: bad input (2) versus a failed operation (1).

use std::fmt;

/// The user's input is wrong (a file, a flag, a name): nothing was changed, exit code 2.
/// The message says where the problem is and how to fix it.
#[derive(Debug)]
pub struct BadInput(pub String);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// A policy gate refused (scan findings, image checks): nothing was released, exit code 3.
#[derive(Debug)]
pub struct PolicyRefusal(pub String);

impl fmt::Display for PolicyRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyRefusal {}

/// Shorthand for `Err(BadInput(..))` as an `anyhow::Error`.
pub fn bad_input(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(BadInput(message.into()))
}

/// Exit codes, documented in the README: 0 success, 1 a step failed, 2 bad usage or input,
/// 3 a policy gate refused, 130 stopped by SIGINT or SIGTERM.
pub fn exit_code(error: &anyhow::Error) -> i32 {
    if error.chain().any(|cause| cause.is::<BadInput>()) {
        2
    } else if error.chain().any(|cause| cause.is::<PolicyRefusal>()) {
        3
    } else if error.chain().any(|cause| cause.is::<crate::process::Interrupted>()) {
        130
    } else {
        1
    }
}
