//! Keep-alives a follower forwards to the leader, many to one call.
//!
//! Only the leader keeps lease deadlines, so every keep-alive a follower's
//! client sends crosses to the leader. One internal call each would cost a
//! gRPC round (HTTP/2 frames, a task on each side) per keep-alive; instead
//! the questions that arrive while earlier calls are in flight wait for the
//! next call, which carries all of them (`LeaseKeepers`). A lone question
//! still goes at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::{KeeperRequest, KeeperResponse};
use crate::peer::{CallError, Method, PeerClients};

/// Calls in flight at once; questions arriving meanwhile share the next.
const MAX_IN_FLIGHT: usize = 2;
/// Most questions in one call.
const MAX_BATCH: usize = 1024;
/// Questions waiting for a call; a full queue makes askers wait.
const QUEUE: usize = 8192;

struct Question {
    leader_addr: String,
    request: KeeperRequest,
    reply: oneshot::Sender<Result<KeeperResponse, CallError>>,
}

pub struct Forwarder {
    tx: mpsc::Sender<Question>,
}

impl Forwarder {
    /// Starts the task that sends the questions; a call not answered within
    /// `timeout` fails every question in it.
    pub fn spawn(peers: PeerClients, timeout: Duration) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(peers, rx, timeout));
        Self { tx }
    }

    /// Asks the leader at `leader_addr`, sharing a call with whatever else
    /// is waiting for it.
    pub async fn ask(
        &self,
        leader_addr: &str,
        request: KeeperRequest,
    ) -> Result<KeeperResponse, CallError> {
        let gone = || CallError::Unreachable {
            addr: leader_addr.to_owned(),
            reason: "the lease forwarder stopped".into(),
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

async fn run(peers: PeerClients, mut rx: mpsc::Receiver<Question>, timeout: Duration) {
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
        let mut by_leader: HashMap<String, Vec<Question>> = HashMap::new();
        for question in waiting {
            by_leader
                .entry(question.leader_addr.clone())
                .or_default()
                .push(question);
        }
        let peers = peers.clone();
        tokio::spawn(async move {
            for (addr, questions) in by_leader {
                send(&peers, &addr, questions, timeout).await;
            }
            drop(permit);
        });
    }
}

/// One call carrying `questions`; each asker gets its own answer.
async fn send(peers: &PeerClients, addr: &str, questions: Vec<Question>, timeout: Duration) {
    let requests: Vec<KeeperRequest> = questions.iter().map(|q| q.request).collect();
    let answers: Result<Vec<KeeperResponse>, CallError> = peers
        .call(addr, Method::LeaseKeepers, &requests, timeout)
        .await;
    match answers {
        Ok(answers) if answers.len() == questions.len() => {
            for (question, answer) in questions.into_iter().zip(answers) {
                let _ = question.reply.send(Ok(answer));
            }
        }
        Ok(answers) => {
            let reason = format!("{} answers to {} questions", answers.len(), questions.len());
            for question in questions {
                let _ = question.reply.send(Err(CallError::Status {
                    addr: addr.to_owned(),
                    method: Method::LeaseKeepers,
                    status: tonic::Status::internal(reason.clone()),
                }));
            }
        }
        Err(e) => {
            for question in questions {
                let _ = question.reply.send(Err(e.clone()));
            }
        }
    }
}
