//! The web UI at `/ui/`, judged in a real browser: headless Chromium (Debian
//! `chromium`) driven by Python's `playwright` through
//! `tests/browser/ui_check.py`, against a dev agent whose registry the script
//! changes through the HTTP API while the page is open. The page must show
//! every change without a reload; KV edits made in the page must be visible
//! through the API.
//!
//! Screenshots land in `target/ui-screenshots/`; with `UPDATE_README=1` the
//! services page is also copied to `docs/images/ui.png`, which the README
//! shows. Missing Chromium or Playwright fails the test (`scripts/test.sh`
//! installs both); it never skips.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use testkit::Server;

const BIN: &str = env!("CARGO_BIN_EXE_sextant");
const CHROMIUM: &str = "/usr/bin/chromium";
/// The whole browser run; each expectation inside waits at most 15 s.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `target/ui-screenshots`, beside the test's temporary directory.
fn screenshot_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("ui-screenshots")
}

/// Fails with how to install them when Chromium or Playwright is missing.
async fn require_browser() -> anyhow::Result<()> {
    if !Path::new(CHROMIUM).exists() {
        bail!("{CHROMIUM} is missing: apt-get install chromium (scripts/test.sh installs it)");
    }
    let output = tokio::process::Command::new("python3")
        .args(["-c", "import playwright.sync_api"])
        .kill_on_drop(true)
        .output()
        .await
        .context("cannot run python3")?;
    if !output.status.success() {
        bail!(
            "python3 cannot import playwright (pip install playwright; scripts/test.sh installs \
             it; the system chromium is used, no `playwright install`): {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_files_are_served_and_unknown_ones_are_not() {
    let dev = Server::start_dev(BIN).await;
    let base = dev.http().base_url().to_owned();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    for (path, location) in [("/", "/ui/"), ("/ui", "/ui/")] {
        let reply = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect(path);
        assert!(
            reply.status().is_redirection(),
            "{path}: {}",
            reply.status()
        );
        assert_eq!(reply.headers()["location"], location, "{path}");
    }
    for (path, content_type) in [
        ("/ui/", "text/html"),
        ("/ui/style.css", "text/css"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/kv.js", "text/javascript"),
    ] {
        let reply = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect(path);
        assert_eq!(reply.status(), 200, "{path}");
        let got = reply.headers()["content-type"].to_str().unwrap_or_default();
        assert!(got.starts_with(content_type), "{path}: {got}");
    }
    for path in ["/ui/nope.js", "/ui/..%2FCargo.toml", "/ui/assets/app.js"] {
        let reply = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect(path);
        assert_eq!(reply.status(), 404, "{path}");
    }

    // The summaries answer blocking queries like the rest of the API.
    for path in ["/v1/sextant/ui/services", "/v1/sextant/ui/nodes"] {
        let reply = dev.http().get(path).await.expect(path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        assert!(reply.meta.index.is_some_and(|i| i > 0), "{path}: no index");
        let bad = dev
            .http()
            .get(&format!("{path}?index=x"))
            .await
            .expect(path);
        assert_eq!(bad.status, 400, "{path}?index=x: {}", bad.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_shows_registry_changes_live_in_chromium() {
    require_browser()
        .await
        .expect("the browser test needs Chromium and Playwright");
    let dev = Server::start_dev(BIN).await;
    let shots = screenshot_dir();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/ui_check.py");

    let run = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(dev.http().base_url())
        .arg(&shots)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("{} did not finish in {SCRIPT_TIMEOUT:?}", script.display()))
        .expect("cannot run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    if !stderr.trim().is_empty() {
        println!("----- stderr -----\n{stderr}");
    }
    assert!(
        output.status.success() && stdout.contains("ALL PASS"),
        "the browser check failed (exit {:?}); server log:\n{}",
        output.status.code(),
        dev.log_tail(40)
    );

    let screenshots: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("SCREENSHOT "))
        .collect();
    for name in ["services", "service", "nodes", "kv"] {
        let path = shots.join(format!("{name}.png"));
        assert!(path.exists(), "no screenshot {}", path.display());
        assert!(
            screenshots
                .iter()
                .any(|s| s.ends_with(&format!("{name}.png"))),
            "the script did not report {name}.png"
        );
    }
    if std::env::var_os("UPDATE_README").is_some_and(|v| v == "1") {
        let target = repo_root().join("docs/images/ui.png");
        std::fs::create_dir_all(target.parent().expect("docs/images")).expect("docs/images");
        std::fs::copy(shots.join("services.png"), &target).expect("copy the screenshot");
        println!("updated {}", target.display());
    }
}
