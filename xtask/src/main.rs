//! `cargo xtask`: builds, publishes and releases the BattleScope services from
//! `services/services.toml`. `main` only parses the command line and dispatches.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod error;
mod manifest;
mod reference;

fn main() {}
