//! The recorded history: one JSON line per client operation.
//!
//! Every operation carries when it was invoked and when its answer came back
//! (nanoseconds since the run started, on one monotonic clock), which server
//! and API it went through, and its outcome. An operation that errored or
//! timed out is *indeterminate*: it may or may not have taken effect, and if it
//! did, at any time after its invocation.
//!
//! Registry operations are recorded the same way: each service instance is a
//! register of its own (key `instance/ID`, registration writes, deregistration
//! deletes), and a listing of the service observes all of them at once.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// What a client asked for, on one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Call {
    /// A linearizable read (etcd Range without `serializable`, Consul `?consistent`).
    Get,
    /// An unconditional write of a value unique to the whole run.
    Put { value: String },
    /// Write `value` only if the key currently holds `expected` (`None`: absent).
    Cas {
        expected: Option<String>,
        value: String,
    },
    /// Remove the key.
    Delete,
    /// Register a service instance (Consul catalog) whose id is unique to the run.
    Register { id: String },
    /// Deregister that instance.
    Deregister { id: String },
    /// List the instances of the service (a `?consistent` catalog read).
    ListInstances,
}

/// What an acknowledged operation answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "output", rename_all = "snake_case")]
pub enum Output {
    /// A read's value (`None`: the key is absent).
    Read { value: Option<String> },
    /// Whether a CAS's comparison held (and so its write happened).
    Cas { succeeded: bool },
    /// A put or delete that was acknowledged.
    Done,
    /// The instance ids a listing returned.
    Instances { ids: Vec<String> },
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// Acknowledged with this answer.
    Ok(Output),
    /// Errored or timed out: it may or may not have happened.
    Indeterminate { error: String },
}

/// Which client API carried an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    Etcd,
    Consul,
}

/// One line of the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// The client (a sequential process) that issued it; `u32::MAX - n` for the
    /// harness's own final reads.
    pub process: u32,
    pub key: String,
    pub api: Api,
    /// Index of the server the request was sent to.
    pub server: usize,
    #[serde(flatten)]
    pub call: Call,
    /// Nanoseconds since the start of the run.
    pub invoke_ns: u64,
    pub complete_ns: u64,
    pub outcome: Outcome,
}

/// The history being recorded: a monotonic clock shared by all clients and
/// the operations in completion order.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    operations: Mutex<Vec<Operation>>,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            operations: Mutex::new(Vec::new()),
        }
    }

    /// Nanoseconds since the recorder was created.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub fn record(&self, operation: Operation) {
        self.lock().push(operation);
    }

    /// A copy of everything recorded so far.
    pub fn snapshot(&self) -> Vec<Operation> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Operation>> {
        // A client task that panicked mid-push cannot leave the Vec torn.
        self.operations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Writes `operations` as JSON lines.
pub fn write_jsonl(path: &Path, operations: &[Operation]) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for operation in operations {
        serde_json::to_writer(&mut out, operation)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Reads a history written by [`write_jsonl`].
pub fn read_jsonl(path: &Path) -> anyhow::Result<Vec<Operation>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| Ok(serde_json::from_str(line)?))
        .collect()
}
