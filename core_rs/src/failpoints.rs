//! Named failure-injection points, for tests that must make the writer fail,
//! stall or crash at a chosen step (built with the `failpoints` feature only;
//! without it the points compile to nothing and configuring one is an error).
//!
//! The points (their actions use the `fail` crate's syntax: `pause`, `sleep(500)`,
//! `panic`, `return`, `1*off->pause`, ...):
//!
//! - `commit.before_write`: the writer took a group, before its WriteBatch is written.
//! - `commit.write_error`: `return` fails the group as if RocksDB's write failed.
//! - `commit.before_sync`: the group is written, before the WAL fsync.
//! - `commit.before_publish`: the group is durable, before `durable_seq` is published
//!   and the eventfd signalled.
//! - `store.recover`: at the start of `Store::recover`; `return` fails it with an
//!   injected I/O error.
//!
//! `pause` holds the thread that reaches the point until the point is configured
//! again or removed (from any thread). The registry is process-wide: tests that
//! configure points must not run concurrently with other stores in the process.
//!
//! Configuration: [`set`] and [`remove`] (exposed to Python as `set_failpoint` and
//! `remove_failpoint`), and at every `Store::open` the environment variable
//! `STEAD_FAILPOINTS="name=actions;name=actions"` (so a server started as a child
//! process can be given points).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

pub const COMMIT_BEFORE_WRITE: &str = "commit.before_write";
pub const COMMIT_WRITE_ERROR: &str = "commit.write_error";
pub const COMMIT_BEFORE_SYNC: &str = "commit.before_sync";
pub const COMMIT_BEFORE_PUBLISH: &str = "commit.before_publish";
pub const STORE_RECOVER: &str = "store.recover";
/// A deliberately broken build for the reliability suite: with `return`, a group is
/// written without its rows of the state table (and acknowledged as if whole), so a
/// test can show that the checks over a history catch lost state writes.
pub const COMMIT_DROP_STATE_WRITE: &str = "commit.drop_state_write";

/// Every point there is: configuring another name is refused (it would never trigger).
pub const NAMES: [&str; 6] =
    [COMMIT_BEFORE_WRITE, COMMIT_WRITE_ERROR, COMMIT_BEFORE_SYNC, COMMIT_BEFORE_PUBLISH, STORE_RECOVER, COMMIT_DROP_STATE_WRITE];

/// The environment variable read at `Store::open`.
pub const ENV: &str = "STEAD_FAILPOINTS";

/// Whether this build has failpoints.
pub const ENABLED: bool = cfg!(feature = "failpoints");

/// `failpoint!(NAME)` or `failpoint!(NAME, |arg| early_return_value)`: the `fail`
/// crate's `fail_point!` with the feature, nothing without it.
#[cfg(feature = "failpoints")]
macro_rules! failpoint {
    ($name:expr) => {
        fail::fail_point!($name)
    };
    ($name:expr, $e:expr) => {
        fail::fail_point!($name, $e)
    };
}

#[cfg(not(feature = "failpoints"))]
macro_rules! failpoint {
    ($name:expr) => {
        let _: &str = $name;
    };
    ($name:expr, $e:expr) => {
        let _: &str = $name;
    };
}

pub(crate) use failpoint;

static CONFIGURED: AtomicBool = AtomicBool::new(false);

/// Whether any point was configured in this process (then the writer takes the
/// path that has room for `commit.before_sync`).
pub fn configured() -> bool {
    CONFIGURED.load(Ordering::Relaxed)
}

fn check_name(name: &str) -> Result<()> {
    if !ENABLED {
        return Err(Error::InvalidArgument(format!(
            "failpoint {name:?}: this build of Stead has no failpoints (build with the cargo feature `failpoints`)"
        )));
    }
    if !NAMES.contains(&name) {
        return Err(Error::InvalidArgument(format!("unknown failpoint {name:?}: expected one of {NAMES:?}")));
    }
    Ok(())
}

/// Give point `name` the actions `actions`; a thread paused at it is released.
pub fn set(name: &str, actions: &str) -> Result<()> {
    check_name(name)?;
    #[cfg(feature = "failpoints")]
    fail::cfg(name, actions).map_err(|e| Error::InvalidArgument(format!("failpoint {name:?}: bad actions {actions:?}: {e}")))?;
    CONFIGURED.store(true, Ordering::Relaxed);
    #[cfg(not(feature = "failpoints"))]
    let _ = actions;
    Ok(())
}

/// Make point `name` do nothing again; a thread paused at it is released.
pub fn remove(name: &str) -> Result<()> {
    check_name(name)?;
    #[cfg(feature = "failpoints")]
    fail::remove(name);
    Ok(())
}

/// Parse `name=actions;name=actions` (blank parts ignored).
pub fn parse(spec: &str) -> Result<Vec<(&str, &str)>> {
    spec.split(';')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.split_once('=')
                .map(|(n, a)| (n.trim(), a.trim()))
                .ok_or_else(|| Error::InvalidArgument(format!("{ENV}: expected name=actions, got {part:?}")))
        })
        .collect()
}

/// Configure the points named in `$STEAD_FAILPOINTS`, if it is set and not empty.
pub fn configure_from_env() -> Result<()> {
    let Ok(spec) = std::env::var(ENV) else { return Ok(()) };
    for (name, actions) in parse(&spec)? {
        set(name, actions).map_err(|e| Error::InvalidArgument(format!("{ENV}: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_into_name_action_pairs() {
        assert_eq!(
            parse(" commit.before_write=1*off->pause ; store.recover=return;").unwrap(),
            vec![("commit.before_write", "1*off->pause"), ("store.recover", "return")]
        );
        assert!(parse("").unwrap().is_empty());
        assert!(parse("commit.before_write").is_err());
    }

    #[test]
    fn unknown_names_are_refused() {
        assert!(set("commit.nope", "panic").is_err());
        assert!(remove("nope").is_err());
    }

    #[cfg(not(feature = "failpoints"))]
    #[test]
    fn without_the_feature_configuring_is_an_error() {
        assert!(!ENABLED);
        assert!(set(COMMIT_BEFORE_WRITE, "pause").is_err());
    }
}
