//! The DNS listeners: one UDP socket and one TCP listener on the same port.
//! Every packet is answered from the local catalog with bounded work; a
//! packet that does not parse gets FORMERR (or nothing, if it is not even a
//! query header) and never stops the server.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::Record;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::resolve::{Answer, Resolver};
use sextant_core::registry::{Consistency, Registry};

/// The largest UDP response without EDNS (RFC 1035).
const UDP_PLAIN_BYTES: usize = 512;
/// The largest UDP response we send to an EDNS client, whatever it offers.
const UDP_EDNS_BYTES: u16 = 1232;
/// The largest request read from UDP; longer ones are cut and fail to parse.
const UDP_RECEIVE_BYTES: usize = 4096;
/// Open TCP connections; further ones are closed at once.
const MAX_TCP_CONNECTIONS: usize = 256;
/// A TCP connection idle (or trickling a request) this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// The bound sockets, before serving starts.
pub struct Listeners {
    pub udp: UdpSocket,
    pub tcp: TcpListener,
}

impl Listeners {
    /// The address both listen on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.udp.local_addr()
    }
}

/// Binds UDP and TCP on `addr`. With port 0, both get the same free port
/// (retrying if TCP finds the port UDP got already taken).
pub async fn bind(addr: SocketAddr) -> io::Result<Listeners> {
    let mut attempts = 0;
    loop {
        let udp = UdpSocket::bind(addr).await?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok(Listeners { udp, tcp }),
            Err(e) if addr.port() == 0 && attempts < 10 => {
                attempts += 1;
                tracing::debug!(port, error = %e, "DNS TCP port taken; choosing another");
            }
            Err(e) => return Err(e),
        }
    }
}

/// Serves DNS until the returned future is dropped (the server wraps it in
/// `tasks::until_stopped`, which also drops every open TCP connection).
pub async fn serve(listeners: Listeners, registry: Arc<Registry>, resolver: Resolver) {
    let handler = Arc::new(Handler { registry, resolver });
    tokio::join!(
        serve_udp(listeners.udp, handler.clone()),
        serve_tcp(listeners.tcp, handler)
    );
}

async fn serve_udp(socket: UdpSocket, handler: Arc<Handler>) {
    let mut buf = vec![0u8; UDP_RECEIVE_BYTES];
    loop {
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                tracing::debug!(error = %e, "DNS UDP receive failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Some(packet) = buf.get(..len) else {
            continue;
        };
        if let Some(reply) = handler.respond(packet, Transport::Udp).await {
            if let Err(e) = socket.send_to(&reply, peer).await {
                tracing::debug!(%peer, error = %e, "DNS UDP send failed");
            }
        }
    }
}

async fn serve_tcp(listener: TcpListener, handler: Arc<Handler>) {
    let slots = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    // Owned here: dropping this future (server stop) aborts every connection.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        tracing::debug!(%peer, "too many DNS TCP connections; closing");
                        continue;
                    };
                    let handler = handler.clone();
                    connections.spawn(async move {
                        let _slot = slot;
                        serve_connection(stream, handler).await;
                    });
                }
                Err(e) => {
                    tracing::debug!(error = %e, "DNS TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Messages on a TCP connection are framed by a two-byte length (RFC 1035 4.2.2).
async fn serve_connection(mut stream: TcpStream, handler: Arc<Handler>) {
    loop {
        let len = match tokio::time::timeout(TCP_IDLE, stream.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            _ => return,
        };
        let mut packet = vec![0u8; len];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut packet)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let Some(reply) = handler.respond(&packet, Transport::Tcp).await else {
            return;
        };
        let Ok(reply_len) = u16::try_from(reply.len()) else {
            return;
        };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&reply_len.to_be_bytes());
        framed.extend_from_slice(&reply);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

struct Handler {
    registry: Arc<Registry>,
    resolver: Resolver,
}

impl Handler {
    /// The encoded response to one request, or `None` to stay silent.
    async fn respond(&self, packet: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let request = match Message::from_vec(packet) {
            Ok(request) => request,
            Err(e) => {
                tracing::debug!(error = %e, "malformed DNS request");
                return format_error(packet);
            }
        };
        if request.metadata.message_type != MessageType::Query {
            return None;
        }
        let mut response = Message::response(request.metadata.id, request.metadata.op_code);
        response.metadata.recursion_desired = request.metadata.recursion_desired;
        response.metadata.recursion_available = false;
        response.queries = request.queries.clone();
        let mut max_bytes = match transport {
            Transport::Udp => UDP_PLAIN_BYTES,
            Transport::Tcp => usize::from(u16::MAX),
        };
        if let Some(edns) = &request.edns {
            let mut ours = Edns::new();
            ours.set_max_payload(UDP_EDNS_BYTES);
            response.set_edns(ours);
            if transport == Transport::Udp {
                max_bytes = usize::from(edns.max_payload().clamp(512, UDP_EDNS_BYTES));
            }
        }

        let answer = match (request.metadata.op_code, request.queries.as_slice()) {
            (OpCode::Query, [query]) => {
                if self
                    .registry
                    .read_barrier(Consistency::Stale)
                    .await
                    .is_err()
                {
                    response.metadata.response_code = ResponseCode::ServFail;
                    return encode(&response);
                }
                let state = self.registry.view();
                self.resolver
                    .resolve(state.catalog(), query, &mut rand::rng())
            }
            (OpCode::Query, _) => {
                response.metadata.response_code = ResponseCode::FormErr;
                return encode(&response);
            }
            _ => {
                response.metadata.response_code = ResponseCode::NotImp;
                return encode(&response);
            }
        };
        tracing::debug!(query = ?request.queries.first(), ?transport, "DNS query");

        // The one place an answer becomes a response code.
        match answer {
            Answer::Refused => {
                response.metadata.response_code = ResponseCode::Refused;
                encode(&response)
            }
            Answer::NxDomain | Answer::NoData => {
                response.metadata.authoritative = true;
                if answer == Answer::NxDomain {
                    response.metadata.response_code = ResponseCode::NXDomain;
                }
                response.add_authority(self.resolver.soa().clone());
                encode(&response)
            }
            Answer::Records {
                mut answers,
                mut additionals,
            } => {
                response.metadata.authoritative = true;
                if transport == Transport::Udp {
                    let limit = self.resolver.udp_answer_limit();
                    if answers.len() > limit {
                        response.metadata.truncation = true;
                        keep_first(&mut answers, &mut additionals, limit);
                    }
                }
                fit(response, answers, additionals, max_bytes)
            }
        }
    }
}

/// Encodes the response with as many answers as fit in `max_bytes` (halving
/// until they do, so the work stays bounded), setting TC if any were cut.
fn fit(
    mut response: Message,
    mut answers: Vec<Record>,
    mut additionals: Vec<Record>,
    max_bytes: usize,
) -> Option<Vec<u8>> {
    loop {
        let mut attempt = response.clone();
        attempt.answers = answers.clone();
        attempt.additionals = additionals.clone();
        let encoded = encode(&attempt)?;
        if encoded.len() <= max_bytes || answers.is_empty() {
            return Some(encoded);
        }
        response.metadata.truncation = true;
        let keep = answers.len() / 2;
        keep_first(&mut answers, &mut additionals, keep);
    }
}

/// Keeps the first `keep` answers and the additional records that go with them.
fn keep_first(answers: &mut Vec<Record>, additionals: &mut Vec<Record>, keep: usize) {
    answers.truncate(keep);
    additionals.retain(|extra| {
        answers.iter().any(|answer| match &answer.data {
            hickory_proto::rr::RData::SRV(srv) => srv.target == extra.name,
            _ => false,
        })
    });
}

fn encode(message: &Message) -> Option<Vec<u8>> {
    match message.to_vec() {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode a DNS response");
            None
        }
    }
}

/// FORMERR for a request with a readable header that is a query; silence
/// otherwise (never answer a response, so no reflection loops).
fn format_error(packet: &[u8]) -> Option<Vec<u8>> {
    let header = packet.get(..12)?;
    let is_response = header[2] & 0x80 != 0;
    if is_response {
        return None;
    }
    let id = u16::from_be_bytes([header[0], header[1]]);
    encode(&Message::error_msg(
        id,
        OpCode::Query,
        ResponseCode::FormErr,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, SRV};
    use hickory_proto::rr::{Name, RData};

    fn srv(target: &str) -> Record {
        Record::from_rdata(
            Name::from_ascii("_web._tcp.service.consul.").expect("name"),
            0,
            RData::SRV(SRV::new(1, 1, 80, Name::from_ascii(target).expect("name"))),
        )
    }

    fn a(owner: &str) -> Record {
        Record::from_rdata(
            Name::from_ascii(owner).expect("name"),
            0,
            RData::A(A::new(10, 0, 0, 1)),
        )
    }

    #[test]
    fn truncation_keeps_the_additionals_of_kept_answers() {
        let mut answers = vec![srv("a.node.dc1.consul."), srv("b.node.dc1.consul.")];
        let mut additionals = vec![a("a.node.dc1.consul."), a("b.node.dc1.consul.")];
        keep_first(&mut answers, &mut additionals, 1);
        assert_eq!(answers.len(), 1);
        assert_eq!(additionals, vec![a("a.node.dc1.consul.")]);
    }

    #[test]
    fn oversized_answers_are_cut_to_fit_with_tc() {
        let answers: Vec<Record> = (0..100).map(|i| a(&format!("n{i}.node.consul."))).collect();
        let bytes = fit(
            Message::response(1, OpCode::Query),
            answers,
            Vec::new(),
            UDP_PLAIN_BYTES,
        )
        .expect("encoded");
        assert!(bytes.len() <= UDP_PLAIN_BYTES);
        let decoded = Message::from_vec(&bytes).expect("decodes");
        assert!(decoded.metadata.truncation);
        assert!(!decoded.answers.is_empty());
    }

    #[test]
    fn garbage_gets_formerr_or_silence() {
        assert_eq!(format_error(&[1, 2, 3]), None);
        let reply = format_error(&[0x12, 0x34, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xff])
            .expect("a query header gets FORMERR");
        let decoded = Message::from_vec(&reply).expect("decodes");
        assert_eq!(decoded.metadata.id, 0x1234);
        assert_eq!(decoded.metadata.response_code, ResponseCode::FormErr);
        // A response is never answered.
        assert_eq!(format_error(&[0, 1, 0x81, 0, 0, 0, 0, 0, 0, 0, 0, 0]), None);
    }
}
