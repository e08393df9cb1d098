//! The README's etcd compatibility matrix, rendered from the suites' reports.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::report::Report;

pub const START: &str = "<!-- compat:etcd:start -->";
pub const END: &str = "<!-- compat:etcd:end -->";

fn readme_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../README.md")
}

/// The lines between the markers (both excluded), ending with a newline.
pub fn render(reports: &[Report]) -> String {
    let mut text = String::from(
        "\netcd v3 gRPC on `--grpc-addr` — KV (Range, Put, DeleteRange, Txn, Compact), Watch, \
         Lease, Cluster, Maintenance; the catalog read-only under `/sextant/services/` (see \
         [docs/etcd.md](docs/etcd.md)) — checked with real clients by \
         `crates/sextant/tests/etcd_compat`:\n\n\
         | etcd client | version | checked | result |\n\
         |---|---|---|---|\n",
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
fn splice(readme: &str, section: &str) -> Result<String, String> {
    let start = readme
        .find(START)
        .ok_or_else(|| format!("README.md has no {START} marker"))?;
    let body = start + START.len();
    let end = readme[body..]
        .find(END)
        .map(|i| body + i)
        .ok_or_else(|| format!("README.md has no {END} marker after {START}"))?;
    Ok(format!("{}\n{section}{}", &readme[..body], &readme[end..]))
}

/// With `UPDATE_README=1` rewrites the README's etcd section; otherwise
/// fails if it differs from what this run found.
pub fn check_readme(reports: &[Report]) -> Result<(), String> {
    let path = readme_path();
    let readme = std::fs::read_to_string(&path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    let updated = splice(&readme, &render(reports))?;
    if updated == readme {
        println!("README.md's etcd compatibility matrix matches this run");
        return Ok(());
    }
    if std::env::var("UPDATE_README").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &updated)
            .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        println!("rewrote README.md's etcd compatibility matrix");
        return Ok(());
    }
    Err(format!(
        "README.md's etcd compatibility matrix differs from this run; regenerate it with\n  \
         UPDATE_README=1 cargo nextest run -p sextant --test etcd_compat\n\
         --- this run would write ---\n{}",
        render(reports)
    ))
}

#[test]
fn splicing_replaces_only_the_marked_section() {
    let readme = format!("a\n{START}\nold\n{END}\nb\n");
    let spliced = splice(&readme, "new\n").expect("markers");
    assert_eq!(spliced, format!("a\n{START}\nnew\n{END}\nb\n"));
    assert_eq!(splice(&spliced, "new\n").expect("markers"), spliced);
    assert!(splice("no markers", "x").is_err());
}
