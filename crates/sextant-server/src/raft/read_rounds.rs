//! Linearizable reads share their quorum rounds.
//!
//! A linearizable read on the leader must confirm, with a round of
//! heartbeats acknowledged by a majority, that the leader still leads — a
//! round that starts after the read arrived. openraft 0.9 runs one such round
//! per `get_read_log_id` call, so 64 concurrent readers cost 64 rounds of
//! AppendEntries to every follower. Here one task runs the rounds one after
//! another: every read that arrives while a round is in flight waits for the
//! next one, which starts when the current one ends and answers all of them.
//! A read waits at most two rounds; under load a round serves many reads.

use openraft::error::{CheckIsLeaderError, RaftError};
use tokio::sync::{mpsc, oneshot};

use super::rpc::{ReadIndexResponse, RemoteError};
use super::Raft;

/// The handle the registry holds; the task stops when it is dropped.
pub struct ReadRounds {
    tx: mpsc::UnboundedSender<oneshot::Sender<ReadIndexResponse>>,
}

impl ReadRounds {
    pub fn spawn(raft: Raft) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(raft, rx));
        Self { tx }
    }

    /// Confirms leadership with a quorum round that starts after this call;
    /// answers the index a read must wait for (the larger of openraft's read
    /// log id and the applied index then).
    pub async fn confirm(&self) -> ReadIndexResponse {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(reply).is_err() {
            return Err(RemoteError::ShuttingDown);
        }
        answer.await.unwrap_or(Err(RemoteError::ShuttingDown))
    }
}

async fn run(raft: Raft, mut rx: mpsc::UnboundedReceiver<oneshot::Sender<ReadIndexResponse>>) {
    let mut waiting = Vec::new();
    while rx.recv_many(&mut waiting, usize::MAX).await > 0 {
        // Everyone in `waiting` arrived before this round starts.
        let answer = round(&raft).await;
        for reply in waiting.drain(..) {
            let _ = reply.send(answer.clone());
        }
    }
}

async fn round(raft: &Raft) -> ReadIndexResponse {
    match raft.get_read_log_id().await {
        Ok((read_log_id, applied)) => {
            let read = read_log_id.map(|l| l.index).unwrap_or(0);
            let applied = applied.map(|l| l.index).unwrap_or(0);
            Ok(read.max(applied))
        }
        Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward))) => {
            Err(forward.into())
        }
        Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => {
            Err(RemoteError::NotLeader { leader: None })
        }
        Err(RaftError::Fatal(_)) => Err(RemoteError::ShuttingDown),
    }
}
