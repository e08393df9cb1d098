//! Questions a server passes on to the leader, many to one call.
//!
//! Only the leader keeps lease deadlines and TTL clocks, so every etcd
//! keep-alive and every TTL renewal a follower's client sends crosses to
//! the leader. One internal call each would cost a gRPC round (HTTP/2
//! frames, a task on each side) per renewal; instead the questions that
//! arrive while earlier calls are in flight wait for the next call, which
//! carries all of them (`LeaseKeepers`, `TtlUpdates`: a list of requests,
//! answered by a list in the same order). A lone question still goes at
//! once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::{CallError, Method, PeerClients};

/// Calls in flight at once; questions arriving meanwhile share the next.
const MAX_IN_FLIGHT: usize = 2;
/// Most questions in one call.
const MAX_BATCH: usize = 1024;
/// Questions waiting for a call; a full queue makes askers wait.
const QUEUE: usize = 8192;

struct Question<Req, Resp> {
    leader_addr: String,
    request: Req,
    reply: oneshot::Sender<Result<Resp, CallError>>,
}

/// Passes questions of one kind on to the leader, batched into calls of
/// `method`, which takes a `Vec<Req>` and answers a `Vec<Resp>`.
pub struct BatchedCalls<Req, Resp> {
    tx: mpsc::Sender<Question<Req, Resp>>,
}

impl<Req, Resp> BatchedCalls<Req, Resp>
where
    Req: Serialize + Send + Sync + 'static,
    Resp: DeserializeOwned + Send + 'static,
{
    /// Starts the task that sends the questions; a call not answered within
    /// `timeout` fails every question in it.
    pub fn spawn(peers: PeerClients, method: Method, timeout: Duration) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(peers, method, rx, timeout));
        Self { tx }
    }

    /// Asks the leader at `leader_addr`, sharing a call with whatever else
    /// is waiting for it.
    pub async fn ask(&self, leader_addr: &str, request: Req) -> Result<Resp, CallError> {
        let gone = || CallError::Unreachable {
            addr: leader_addr.to_owned(),
            reason: "the batching task stopped".into(),
        };
        let (reply, answer) = oneshot::channel();
        let question = Question {
            leader_addr: leader_addr.to_owned(),
            request,
            reply,
        };
        self.tx.send(question).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn run<Req, Resp>(
    peers: PeerClients,
    method: Method,
    mut rx: mpsc::Receiver<Question<Req, Resp>>,
    timeout: Duration,
) where
    Req: Serialize + Send + Sync + 'static,
    Resp: DeserializeOwned + Send + 'static,
{
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let mut waiting = vec![first];
        while waiting.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(question) => waiting.push(question),
                Err(_) => break,
            }
        }
        // Around an election, questions may name different leaders.
        let mut by_leader: HashMap<String, Vec<Question<Req, Resp>>> = HashMap::new();
        for question in waiting {
            by_leader
                .entry(question.leader_addr.clone())
                .or_default()
                .push(question);
        }
        let peers = peers.clone();
        tokio::spawn(async move {
            for (addr, questions) in by_leader {
                send(&peers, method, &addr, questions, timeout).await;
            }
            drop(permit);
        });
    }
}

/// One call carrying `questions`; each asker gets its own answer.
async fn send<Req: Serialize, Resp: DeserializeOwned>(
    peers: &PeerClients,
    method: Method,
    addr: &str,
    questions: Vec<Question<Req, Resp>>,
    timeout: Duration,
) {
    let (requests, replies): (Vec<Req>, Vec<_>) =
        questions.into_iter().map(|q| (q.request, q.reply)).unzip();
    let answers: Result<Vec<Resp>, CallError> = peers.call(addr, method, &requests, timeout).await;
    match answers {
        Ok(answers) if answers.len() == replies.len() => {
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(Ok(answer));
            }
        }
        Ok(answers) => {
            let reason = format!("{} answers to {} questions", answers.len(), replies.len());
            for reply in replies {
                let _ = reply.send(Err(CallError::Status {
                    addr: addr.to_owned(),
                    method,
                    status: tonic::Status::internal(reason.clone()),
                }));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
