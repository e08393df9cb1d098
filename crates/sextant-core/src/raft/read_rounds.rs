//! Linearizable reads share their quorum rounds.
//!
//! A linearizable read must confirm, with a round of heartbeats that a
//! majority acknowledges, that the leader still leads — a round that starts
//! after the read arrived. openraft 0.9 runs one such round per
//! `get_read_log_id` call, so 64 concurrent readers cost 64 rounds of
//! AppendEntries to every follower; and every read on a follower costs a
//! ReadIndex call to the leader. Here one task runs the rounds one after
//! another: every read that arrives while a round is in flight waits for the
//! next one, which starts when the current one ends and answers all of them.
//! A read waits at most two rounds; under load a round serves many reads.
//! The leader runs its rounds of heartbeats this way, and each follower its
//! ReadIndex calls to the leader.

use std::future::Future;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, RaftError};
use tokio::sync::{mpsc, oneshot};

use super::Raft;
use crate::peer::{Method, PeerClients};
use crate::peer::{ReadIndexRequest, ReadIndexResponse, RemoteError};

/// The handle the registry holds; the task stops when it is dropped.
pub struct ReadRounds {
    tx: mpsc::UnboundedSender<oneshot::Sender<ReadIndexResponse>>,
}

impl ReadRounds {
    /// Rounds of heartbeats, run by this server while it leads.
    pub fn of_leader(raft: Raft) -> Self {
        Self::spawn(move || leader_round(raft.clone()))
    }

    /// ReadIndex calls to whichever server leads, for reads on a follower.
    pub fn of_follower(raft: Raft, peers: PeerClients, timeout: Duration) -> Self {
        Self::spawn(move || forwarded_round(raft.clone(), peers.clone(), timeout))
    }

    fn spawn<F, Fut>(round: F) -> Self
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ReadIndexResponse> + Send,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<oneshot::Sender<ReadIndexResponse>>();
        tokio::spawn(async move {
            let mut waiting = Vec::new();
            while rx.recv_many(&mut waiting, usize::MAX).await > 0 {
                // Everyone in `waiting` arrived before this round starts.
                let answer = round().await;
                for reply in waiting.drain(..) {
                    let _ = reply.send(answer.clone());
                }
            }
        });
        Self { tx }
    }

    /// Confirms leadership with a quorum round that starts after this call;
    /// answers the index a read must wait for.
    pub async fn confirm(&self) -> ReadIndexResponse {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(reply).is_err() {
            return Err(RemoteError::ShuttingDown);
        }
        answer.await.unwrap_or(Err(RemoteError::ShuttingDown))
    }
}

/// One round on the leader: the larger of openraft's read log id and the
/// applied index then.
async fn leader_round(raft: Raft) -> ReadIndexResponse {
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

/// One round on a follower: the leader's answer to one ReadIndex call.
async fn forwarded_round(raft: Raft, peers: PeerClients, timeout: Duration) -> ReadIndexResponse {
    let Some((_, leader)) = super::leader_of(&raft) else {
        return Err(RemoteError::NotLeader { leader: None });
    };
    peers
        .call(
            &leader.raft_addr,
            Method::ReadIndex,
            &ReadIndexRequest::Quorum,
            timeout,
        )
        .await
        .unwrap_or(Err(RemoteError::NotLeader { leader: None }))
}
