//! Compatibility reports with real clients, and the README matrices rendered
//! from them.
//!
//! A test binary runs client suites; each suite records its checks in a
//! [`Report`]. One test that holds every report of its binary then calls
//! [`Matrix::conclude`]: it writes `target/compat/<matrix>-<suite>.json`,
//! renders the matrix and compares it with the README between
//! `<!-- compat:<matrix>:start -->` and `<!-- compat:<matrix>:end -->`
//! (`UPDATE_README=1` rewrites that section instead), and fails if any check
//! failed or the README is stale. The comparison needs every report of the
//! matrix in one process, so one test runs all the suites it renders.
//!
//! `SEXTANT_COMPAT_ONLY=<suite id>,...` runs only those suites ([`selected`])
//! and leaves the README alone.

use std::fmt::{Display, Write as _};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

/// Runs only the suites it names, comma-separated, and skips the README.
pub const ONLY_ENV: &str = "SEXTANT_COMPAT_ONLY";
/// `1` rewrites the README's section instead of comparing it.
pub const UPDATE_ENV: &str = "UPDATE_README";

/// One client suite, fixed before it runs.
#[derive(Clone, Copy, Debug)]
pub struct Suite {
    /// File-name-safe identifier: `<matrix>-<id>.json`.
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

/// What one client suite found: every check by name, passed or failed, and
/// the client's version.
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

    /// Writes the report as JSON to `<dir>/<matrix>-<id>.json`; returns the
    /// file written.
    pub fn write_to(&self, dir: &Path, matrix: &str) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{matrix}-{}.json", self.id));
        std::fs::write(&path, serde_json::to_vec_pretty(self)?)?;
        Ok(path)
    }
}

/// Whether `suite` runs: all do unless [`ONLY_ENV`] names some.
pub fn selected(suite: Suite) -> bool {
    match std::env::var(ONLY_ENV) {
        Ok(only) => only.split(',').any(|id| id.trim() == suite.id),
        Err(_) => true,
    }
}

/// Runs a suite in a task of its own, so a panic (a harness timeout, say)
/// becomes a failed check of that suite instead of ending the whole run.
pub async fn guarded<F>(suite: Suite, run: F) -> Report
where
    F: Future<Output = Report> + Send + 'static,
{
    let started = Instant::now();
    let report = match tokio::spawn(run).await {
        Ok(report) => report,
        Err(err) => {
            let mut report = Report::new(suite);
            let why = match err.try_into_panic() {
                Ok(panic) => panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| String::from("panicked")),
                Err(err) => err.to_string(),
            };
            report.fail("suite ran to the end", why);
            report
        }
    };
    println!(
        "[{}] {}/{} checks passed in {:?}",
        suite.id,
        report.passed(),
        report.checks.len(),
        started.elapsed()
    );
    report
}

/// One README compatibility matrix.
#[derive(Clone, Copy, Debug)]
pub struct Matrix {
    /// `etcd`, `consul`: names the markers `<!-- compat:<name>:start -->` /
    /// `<!-- compat:<name>:end -->` and the files `<name>-<suite>.json`.
    pub name: &'static str,
    /// The Markdown paragraph above the table.
    pub intro: &'static str,
    /// The heading of the table's client column.
    pub client_heading: &'static str,
    /// The test binary that renders it (`cargo nextest run -p sextant --test <it>`).
    pub test: &'static str,
    /// The test binary's `env!("CARGO_TARGET_TMPDIR")`; results go to the
    /// `compat` directory beside it.
    pub target_tmpdir: &'static str,
}

impl Matrix {
    pub fn start_marker(&self) -> String {
        format!("<!-- compat:{}:start -->", self.name)
    }

    pub fn end_marker(&self) -> String {
        format!("<!-- compat:{}:end -->", self.name)
    }

    /// `target/compat`, next to the `target/tmp` Cargo gives integration tests.
    pub fn results_dir(&self) -> PathBuf {
        let tmp = Path::new(self.target_tmpdir);
        tmp.parent().unwrap_or(tmp).join("compat")
    }

    /// The lines between the markers (both excluded), ending with a newline.
    pub fn render(&self, reports: &[Report]) -> String {
        let mut text = format!(
            "\n{}\n\n| {} | version | checked | result |\n|---|---|---|---|\n",
            self.intro, self.client_heading
        );
        for report in reports {
            let total = report.checks.len();
            let passed = report.passed();
            let result = if report.all_passed() {
                format!("{passed}/{total} pass")
            } else {
                let failed: Vec<&str> = report
                    .checks
                    .iter()
                    .filter(|c| !c.passed)
                    .map(|c| c.name.as_str())
                    .collect();
                format!("**{passed}/{total} pass**; failing: {}", failed.join("; "))
            };
            let _ = writeln!(
                text,
                "| {} | {} | {} | {} |",
                report.client,
                report.version,
                report.scope,
                result.replace('|', "\\|")
            );
        }
        text.push('\n');
        text
    }

    /// Replaces the section between the markers in `readme`.
    fn splice(&self, readme: &str, section: &str) -> Result<String, String> {
        let (start, end) = (self.start_marker(), self.end_marker());
        let at = readme
            .find(&start)
            .ok_or_else(|| format!("README.md has no {start} marker"))?;
        let body = at + start.len();
        let stop = readme[body..]
            .find(&end)
            .map(|i| body + i)
            .ok_or_else(|| format!("README.md has no {end} marker after {start}"))?;
        Ok(format!("{}\n{section}{}", &readme[..body], &readme[stop..]))
    }

    /// With `UPDATE_README=1` rewrites the README's section; otherwise fails
    /// if it differs from what this run found.
    pub fn check_readme(&self, reports: &[Report]) -> Result<(), String> {
        let name = self.name;
        let path = readme_path();
        let readme = std::fs::read_to_string(&path)
            .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        let rendered = self.render(reports);
        let updated = self.splice(&readme, &rendered)?;
        if updated == readme {
            println!("README.md's {name} compatibility matrix matches this run");
            return Ok(());
        }
        if std::env::var(UPDATE_ENV).is_ok_and(|v| v == "1") {
            std::fs::write(&path, &updated)
                .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
            println!("rewrote README.md's {name} compatibility matrix");
            return Ok(());
        }
        Err(format!(
            "README.md's {name} compatibility matrix differs from this run; regenerate it with\n  \
             {UPDATE_ENV}=1 cargo nextest run -p sextant --test {}\n\
             --- this run would write ---\n{rendered}",
            self.test
        ))
    }

    /// Ends the run: writes every report to [`Matrix::results_dir`], checks
    /// (or rewrites) the README unless [`ONLY_ENV`] is set, and panics if a
    /// check failed or the README is stale.
    pub fn conclude(&self, reports: &[Report]) {
        let dir = self.results_dir();
        for report in reports {
            match report.write_to(&dir, self.name) {
                Ok(path) => println!("wrote {}", path.display()),
                Err(err) => panic!("cannot write the results of {}: {err:#}", report.id),
            }
        }

        let failed: Vec<String> = reports
            .iter()
            .flat_map(|r| {
                r.checks
                    .iter()
                    .filter(|c| !c.passed)
                    .map(move |c| format!("{}: {}: {}", r.id, c.name, c.detail))
            })
            .collect();

        let readme = if std::env::var_os(ONLY_ENV).is_none() {
            self.check_readme(reports)
        } else {
            println!("{ONLY_ENV} is set: the README is neither compared nor updated");
            Ok(())
        };
        let mut problems = Vec::new();
        if !failed.is_empty() {
            problems.push(format!(
                "{} {} compatibility checks failed:\n{}",
                failed.len(),
                self.name,
                failed.join("\n")
            ));
        }
        if let Err(readme) = readme {
            problems.push(readme);
        }
        assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    }
}

/// The workspace's README.md.
fn readme_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MATRIX: Matrix = Matrix {
        name: "demo",
        intro: "Intro.",
        client_heading: "demo client",
        test: "demo_compat",
        target_tmpdir: "/t/tmp",
    };

    #[test]
    fn splicing_replaces_only_the_marked_section() {
        let (start, end) = (MATRIX.start_marker(), MATRIX.end_marker());
        assert_eq!(start, "<!-- compat:demo:start -->");
        let other = "<!-- compat:other:start -->\nkeep\n<!-- compat:other:end -->\n";
        let readme = format!("a\n{start}\nold\n{end}\n{other}b\n");
        let spliced = MATRIX.splice(&readme, "new\n").expect("markers");
        assert_eq!(spliced, format!("a\n{start}\nnew\n{end}\n{other}b\n"));
        assert_eq!(MATRIX.splice(&spliced, "new\n").expect("markers"), spliced);
        assert!(MATRIX.splice("no markers", "x").is_err());
    }

    #[test]
    fn failures_are_named_in_the_result_column() {
        let suite = Suite {
            id: "s",
            client: "C",
            scope: "things",
        };
        let mut report = Report::new(suite);
        report.version = String::from("1.0");
        report.pass("one");
        report.fail("a|b", "why");
        let rendered = MATRIX.render(&[report]);
        assert_eq!(
            rendered,
            "\nIntro.\n\n| demo client | version | checked | result |\n|---|---|---|---|\n\
             | C | 1.0 | things | **1/2 pass**; failing: a\\|b |\n\n"
        );
        assert_eq!(MATRIX.results_dir(), Path::new("/t/compat"));
    }
}
