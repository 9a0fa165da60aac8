//! Load tests that need the machine to themselves. This is a test binary of its
//! own because cargo runs test binaries one after another: nothing of the `it`
//! suite runs beside it and steals the CPU its latency limits assume.

#[allow(dead_code)]
#[path = "../it/helpers.rs"]
mod helpers;

mod hostile_mix;
mod soak;

/// Held by each load test: cargo runs the tests of a binary in parallel, and each
/// needs the machine to itself.
static MACHINE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
