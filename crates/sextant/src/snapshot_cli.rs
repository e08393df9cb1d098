//! `sextant snapshot save FILE` and `sextant snapshot restore FILE`: the
//! whole state to a file and back, over `GET`/`PUT /v1/snapshot`, with
//! progress on stderr and a summary on stdout.
//!
//! A save is checked as it arrives (length and checksum, see
//! `sextant_core::snapshot_archive`) and only a whole, intact file
//! takes FILE's name: it is written to a temporary file beside it, synced,
//! and renamed, so an interrupted save never leaves a torn FILE behind.
//! A restore checks the file before sending it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Subcommand;
use sextant_core::snapshot_archive::{self as archive, Verifier};

use crate::client::{expect_ok, Target};
use crate::progress::{human_bytes, Progress};

#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Save the whole state of the cluster to FILE.
    Save {
        file: PathBuf,
        /// Let any server answer from its own state, without a leader.
        #[arg(long)]
        stale: bool,
    },
    /// Replace the whole state of the cluster with FILE's.
    Restore { file: PathBuf },
}

/// Bytes per piece of an upload.
const UPLOAD_CHUNK_BYTES: usize = 256 * 1024;

pub async fn snapshot(target: &Target, command: SnapshotCommand) -> anyhow::Result<()> {
    match command {
        SnapshotCommand::Save { file, stale } => save(target, &file, stale).await,
        SnapshotCommand::Restore { file } => restore(target, &file).await,
    }
}

fn index_header(response: &reqwest::Response) -> Option<u64> {
    response
        .headers()
        .get("X-Consul-Index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

async fn save(target: &Target, file: &Path, stale: bool) -> anyhow::Result<()> {
    let url = target.url(if stale {
        "/v1/snapshot?stale"
    } else {
        "/v1/snapshot"
    });
    let response = reqwest::Client::new()
        .get(&url)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let mut response = expect_ok(response).await?;
    let index = index_header(&response);
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".sextant-snapshot-")
        .tempfile_in(&dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    let mut progress = Progress::new("Saving", response.content_length());
    let mut verifier = Verifier::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .context("the snapshot download broke off")?
    {
        verifier
            .update(&chunk)
            .context("the server sent a damaged snapshot")?;
        temp.write_all(&chunk)
            .with_context(|| format!("cannot write {}", temp.path().display()))?;
        progress.advance(chunk.len() as u64);
    }
    progress.finish();
    let header = verifier
        .finish()
        .context("the server sent a damaged snapshot")?;
    if index.is_some_and(|i| i != header.revision) {
        bail!(
            "the server's X-Consul-Index {index:?} differs from the snapshot's revision {}",
            header.revision
        );
    }
    temp.as_file()
        .sync_all()
        .with_context(|| format!("cannot sync {}", temp.path().display()))?;
    temp.persist(file)
        .with_context(|| format!("cannot rename the snapshot to {}", file.display()))?;
    // The rename itself is durable only once the directory is synced.
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync directory {}", dir.display()))?;
    println!(
        "Saved snapshot of revision {} to {} ({} in {:.1?})",
        header.revision,
        file.display(),
        human_bytes(header.file_len()),
        progress.elapsed()
    );
    Ok(())
}

async fn restore(target: &Target, file: &Path) -> anyhow::Result<()> {
    let bytes = tokio::fs::read(file)
        .await
        .with_context(|| format!("cannot read {}", file.display()))?;
    let (header, _) = archive::open(&bytes)
        .with_context(|| format!("{} is not a usable snapshot", file.display()))?;
    let total = bytes.len() as u64;
    let progress = std::sync::Arc::new(std::sync::Mutex::new(Progress::new(
        "Restoring",
        Some(total),
    )));
    let bytes = bytes::Bytes::from(bytes);
    let counted = progress.clone();
    // The upload is a stream of slices of the file, counted as the client
    // takes each one to send.
    let pieces = (0..bytes.len()).step_by(UPLOAD_CHUNK_BYTES).map(move |at| {
        let piece = bytes.slice(at..(at + UPLOAD_CHUNK_BYTES).min(bytes.len()));
        if let Ok(mut progress) = counted.lock() {
            progress.advance(piece.len() as u64);
        }
        Ok::<_, std::convert::Infallible>(piece)
    });
    let body = reqwest::Body::wrap_stream(futures::stream::iter(pieces));
    let url = target.url("/v1/snapshot");
    let response = reqwest::Client::new()
        .put(&url)
        .header(reqwest::header::CONTENT_LENGTH, total)
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .body(body)
        .send()
        .await
        .with_context(|| format!("cannot send the snapshot to {url}"))?;
    let elapsed = progress
        .lock()
        .map(|mut progress| {
            progress.finish();
            progress.elapsed()
        })
        .unwrap_or_default();
    let response = expect_ok(response).await?;
    let revision = index_header(&response).map_or_else(|| "unknown".to_string(), |r| r.to_string());
    println!(
        "Restored snapshot of revision {} from {} ({} in {:.1?}); the cluster is now at revision {revision}",
        header.revision,
        file.display(),
        human_bytes(total),
        elapsed
    );
    Ok(())
}
