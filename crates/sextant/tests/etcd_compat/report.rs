//! What one client suite found: every check by name, passed or failed, and
//! the client's version. Written to `target/compat/etcd-<id>.json` and
//! rendered into the README's etcd compatibility matrix.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// One client suite, fixed before it runs.
#[derive(Clone, Copy, Debug)]
pub struct Suite {
    /// File-name-safe identifier: `etcd-<id>.json`.
    pub id: &'static str,
    /// The client as the README names it.
    pub client: &'static str,
    /// What the suite checks, in one line of Markdown.
    pub scope: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    /// Why it failed; empty when it passed.
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub id: String,
    pub client: String,
    pub version: String,
    pub scope: String,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn new(suite: Suite) -> Report {
        Report {
            id: suite.id.to_owned(),
            client: suite.client.to_owned(),
            version: String::from("unknown"),
            scope: suite.scope.to_owned(),
            checks: Vec::new(),
        }
    }

    pub fn pass(&mut self, name: impl Into<String>) {
        let name = name.into();
        println!("[{}] PASS {name}", self.id);
        self.checks.push(Check {
            name,
            passed: true,
            detail: String::new(),
        });
    }

    pub fn fail(&mut self, name: impl Into<String>, detail: impl Display) {
        let name = name.into();
        let detail = detail.to_string();
        println!("[{}] FAIL {name}: {detail}", self.id);
        self.checks.push(Check {
            name,
            passed: false,
            detail,
        });
    }

    /// Records `result` under `name` and hands it back, so a suite can stop
    /// at the first failed step with `?`.
    pub fn step<T, E: Display>(&mut self, name: &str, result: Result<T, E>) -> anyhow::Result<T> {
        match result {
            Ok(value) => {
                self.pass(name);
                Ok(value)
            }
            Err(err) => {
                self.fail(name, &err);
                Err(anyhow::anyhow!("{name}: {err}"))
            }
        }
    }

    /// Records why a suite stopped early, unless its last check already says so.
    pub fn aborted(&mut self, err: &anyhow::Error) {
        if self.checks.last().is_none_or(|c| c.passed) {
            self.fail("suite ran to the end", format!("{err:#}"));
        }
    }

    pub fn passed(&self) -> usize {
        self.checks.iter().filter(|c| c.passed).count()
    }

    pub fn all_passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    /// Writes the report as JSON into `dir`; returns the file written.
    pub fn write_to(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("etcd-{}.json", self.id));
        std::fs::write(&path, serde_json::to_vec_pretty(self)?)?;
        Ok(path)
    }
}

/// `target/compat`, next to the `target/tmp` Cargo gives integration tests.
pub fn results_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("compat")
}

/// A directory of this test run's own under `target/tmp`.
pub fn scratch_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}
