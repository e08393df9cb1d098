//! Accepts etcd clients that send a URL as the HTTP/2 `:authority`.
//!
//! etcd's Go client dials single endpoints (e.g. for `etcdctl endpoint
//! status`) as `passthrough:///http://host:port`, so grpc-go sends
//! `:authority: http://host:port`. Go's HTTP/2 server takes that; the `h2`
//! crate under tonic refuses it as a malformed authority and resets the
//! stream (PROTOCOL_ERROR), with no option to relax. So every connection on
//! the gRPC port passes through this relay, which rewrites the client's
//! header blocks: each is HPACK-decoded (keeping the client's compression
//! state), its `:authority` cut down to `host:port`, and encoded again with
//! an encoder whose state the server's decoder mirrors. Every other frame,
//! and everything the server sends, passes through untouched.
//!
//! A client names the same authority on every request of a connection, so
//! the first header block decides: when its authority is already
//! `host:port` (Rust and most other clients), it and all that follows are
//! copied unparsed, and the connection costs only the copy.

use std::io;
use std::net::SocketAddr;

use futures::Stream;
use loona_hpack::{Decoder, Encoder};
use tokio::io::{AsyncBufRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream};
use tokio::net::{TcpListener, TcpStream};

const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// HTTP/2's default and smallest SETTINGS_MAX_FRAME_SIZE, which the server
/// keeps: rewritten header blocks are cut into frames of at most this.
const MAX_FRAME_PAYLOAD: usize = 16 * 1024;
/// The most a client may send in one frame: the gRPC server keeps HTTP/2's
/// default SETTINGS_MAX_FRAME_SIZE, so a longer frame breaks the protocol
/// (the server would refuse it too). Checked before anything is allocated
/// for the payload, so a forged length costs nothing.
const MAX_ACCEPTED_FRAME: usize = MAX_FRAME_PAYLOAD;
/// The largest header block accepted across HEADERS and CONTINUATION frames.
const MAX_HEADER_BLOCK: usize = 1024 * 1024;
/// Bytes buffered between the relay and the gRPC server, each way.
const RELAY_BUFFER: usize = 64 * 1024;

/// The connections of `listener`, each behind its own relay. The relay
/// tasks end with their connection (the gRPC server closes every connection
/// when it stops).
pub fn incoming(listener: TcpListener) -> impl Stream<Item = io::Result<DuplexStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await;
        let item = accepted.map(|(tcp, peer)| relay(tcp, peer));
        Some((item, listener))
    })
}

fn relay(tcp: TcpStream, peer: SocketAddr) -> DuplexStream {
    let _ = tcp.set_nodelay(true);
    let (ours, theirs) = tokio::io::duplex(RELAY_BUFFER);
    tokio::spawn(async move {
        let (client_read, mut client_write) = tcp.into_split();
        // Frames are read header first, then payload: buffered, most reads
        // take no system call.
        let mut client_read = BufReader::with_capacity(RELAY_BUFFER, client_read);
        let (mut server_read, mut server_write) = tokio::io::split(ours);
        let up = async {
            if let Err(e) = rewrite_client_frames(&mut client_read, &mut server_write).await {
                if e.kind() != io::ErrorKind::UnexpectedEof {
                    tracing::debug!(%peer, error = %e, "gRPC connection relay stopped");
                }
            }
            let _ = server_write.shutdown().await;
        };
        let down = async {
            let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
            let _ = client_write.shutdown().await;
        };
        tokio::join!(up, down);
    });
    theirs
}

/// A header block being collected from HEADERS and CONTINUATION frames.
struct PendingBlock {
    stream_id: [u8; 4],
    end_stream: bool,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
    /// The block's frames as received, to forward unchanged.
    raw: Vec<u8>,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Copies the client's bytes to the server, rewriting header blocks if the
/// first one needs it, else copying everything after it as it comes.
async fn rewrite_client_frames<R, W>(from: &mut R, to: &mut W) -> io::Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut preface = [0u8; PREFACE_LEN];
    from.read_exact(&mut preface).await?;
    to.write_all(&preface).await?;
    let mut decoder = Decoder::new();
    let mut encoder = Encoder::new();
    let mut pending: Option<PendingBlock> = None;
    // Set by a first header block that needed its authority fixed: from
    // then on every block is decoded and encoded again.
    let mut rewriting = false;
    // One buffer for every frame's payload: frames are relayed one at a time.
    let mut payload = Vec::with_capacity(MAX_ACCEPTED_FRAME);
    loop {
        let mut head = [0u8; FRAME_HEADER_LEN];
        from.read_exact(&mut head).await?;
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        if len > MAX_ACCEPTED_FRAME {
            return Err(invalid("frame too large"));
        }
        let (kind, flags) = (head[3], head[4]);
        let stream_id = [head[5], head[6], head[7], head[8]];
        payload.resize(len, 0);
        from.read_exact(&mut payload).await?;
        match (kind, pending.as_mut()) {
            (HEADERS, None) => {
                let (priority, fragment) = split_headers_payload(flags, &payload)?;
                let mut block = PendingBlock {
                    stream_id,
                    end_stream: flags & END_STREAM != 0,
                    priority,
                    fragment: fragment.to_vec(),
                    raw: Vec::new(),
                };
                if !rewriting {
                    block.raw.extend_from_slice(&head);
                    block.raw.extend_from_slice(&payload);
                }
                pending = Some(block);
                if flags & END_HEADERS == 0 {
                    continue;
                }
            }
            (CONTINUATION, Some(block)) if block.stream_id == stream_id => {
                block.fragment.extend_from_slice(&payload);
                if block.fragment.len() > MAX_HEADER_BLOCK {
                    return Err(invalid("header block too large"));
                }
                if !rewriting {
                    block.raw.extend_from_slice(&head);
                    block.raw.extend_from_slice(&payload);
                }
                if flags & END_HEADERS == 0 {
                    continue;
                }
            }
            // Anything else inside a header block breaks HTTP/2's rules;
            // anything else outside one is not ours to touch.
            (_, Some(_)) | (CONTINUATION, None) => return Err(invalid("interrupted header block")),
            (_, None) => {
                to.write_all(&head).await?;
                to.write_all(&payload).await?;
                continue;
            }
        }
        // A header block is complete.
        let Some(block) = pending.take() else {
            continue;
        };
        let mut headers = decoder
            .decode(&block.fragment)
            .map_err(|e| invalid(&format!("undecodable header block: {e:?}")))?;
        let fixed = fix_authority(&mut headers);
        if !rewriting && !fixed {
            // Passed on unchanged, the block leaves the server's decoder
            // in step with the client's encoder, as every later one will.
            to.write_all(&block.raw).await?;
            tokio::io::copy_buf(from, to).await?;
            return Ok(());
        }
        rewriting = true;
        emit(&block, &headers, &mut encoder, to).await?;
    }
}

/// Cuts every `:authority` down to `host:port`; whether any changed.
fn fix_authority(headers: &mut [(Vec<u8>, Vec<u8>)]) -> bool {
    let mut changed = false;
    for (name, value) in headers.iter_mut() {
        if name.as_slice() == b":authority" {
            let fixed = normalize_authority(value);
            if fixed != *value {
                *value = fixed;
                changed = true;
            }
        }
    }
    changed
}

/// The priority fields and the header block fragment of a HEADERS payload.
fn split_headers_payload(flags: u8, payload: &[u8]) -> io::Result<(Option<[u8; 5]>, &[u8])> {
    let mut body = payload;
    let mut padding = 0usize;
    if flags & PADDED != 0 {
        let (&pad, rest) = body.split_first().ok_or_else(|| invalid("bad padding"))?;
        padding = usize::from(pad);
        body = rest;
    }
    let mut priority = None;
    if flags & PRIORITY != 0 {
        let fields = body.get(..5).ok_or_else(|| invalid("bad priority"))?;
        let mut copy = [0u8; 5];
        copy.copy_from_slice(fields);
        priority = Some(copy);
        body = &body[5..];
    }
    let end = body
        .len()
        .checked_sub(padding)
        .ok_or_else(|| invalid("bad padding"))?;
    Ok((priority, &body[..end]))
}

/// `host:port` from an authority that may be a URL.
fn normalize_authority(value: &[u8]) -> Vec<u8> {
    let after_scheme = value
        .windows(3)
        .position(|w| w == b"://")
        .map_or(value, |at| &value[at + 3..]);
    let end = after_scheme
        .iter()
        .position(|b| *b == b'/')
        .unwrap_or(after_scheme.len());
    after_scheme[..end].to_vec()
}

/// Writes the headers of `block` again as HEADERS (+ CONTINUATION) frames.
async fn emit<W: AsyncWrite + Unpin>(
    block: &PendingBlock,
    headers: &[(Vec<u8>, Vec<u8>)],
    encoder: &mut Encoder<'_>,
    to: &mut W,
) -> io::Result<()> {
    let encoded = encoder.encode(headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
    let mut first = Vec::with_capacity(5 + encoded.len().min(MAX_FRAME_PAYLOAD));
    let mut flags = 0u8;
    if block.end_stream {
        flags |= END_STREAM;
    }
    if let Some(priority) = block.priority {
        flags |= PRIORITY;
        first.extend_from_slice(&priority);
    }
    let room = MAX_FRAME_PAYLOAD - first.len();
    let (head, mut rest) = encoded.split_at(encoded.len().min(room));
    first.extend_from_slice(head);
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    write_frame(to, HEADERS, flags, block.stream_id, &first).await?;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME_PAYLOAD));
        rest = tail;
        let flags = if rest.is_empty() { END_HEADERS } else { 0 };
        write_frame(to, CONTINUATION, flags, block.stream_id, chunk).await?;
    }
    Ok(())
}

async fn write_frame<W: AsyncWrite + Unpin>(
    to: &mut W,
    kind: u8,
    flags: u8,
    stream_id: [u8; 4],
    payload: &[u8],
) -> io::Result<()> {
    let len = payload.len();
    let head = [
        (len >> 16) as u8,
        (len >> 8) as u8,
        len as u8,
        kind,
        flags,
        stream_id[0],
        stream_id[1],
        stream_id[2],
        stream_id[3],
    ];
    to.write_all(&head).await?;
    to.write_all(payload).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_lose_their_scheme_and_path() {
        assert_eq!(
            normalize_authority(b"http://127.0.0.1:2379"),
            b"127.0.0.1:2379"
        );
        assert_eq!(normalize_authority(b"https://h:1/x"), b"h:1");
        assert_eq!(normalize_authority(b"127.0.0.1:2379"), b"127.0.0.1:2379");
    }

    /// A padded, prioritized HEADERS frame followed by a CONTINUATION comes
    /// out as one header block with the authority fixed and the rest kept.
    #[tokio::test]
    async fn header_blocks_are_rewritten_and_other_frames_pass() {
        let mut client = Encoder::new();
        let block = client.encode([
            (&b":method"[..], &b"POST"[..]),
            (b":authority", b"http://127.0.0.1:2379"),
            (b":path", b"/etcdserverpb.Maintenance/Status"),
        ]);
        let (a, b) = block.split_at(4);
        let mut input = vec![0u8; PREFACE_LEN];
        // HEADERS: padded (2 bytes) and with priority, without END_HEADERS.
        let mut payload = vec![2u8];
        payload.extend_from_slice(&[0, 0, 0, 0, 16]);
        payload.extend_from_slice(a);
        payload.extend_from_slice(&[0, 0]);
        push_frame(
            &mut input,
            HEADERS,
            PADDED | PRIORITY | END_STREAM,
            1,
            &payload,
        );
        push_frame(&mut input, CONTINUATION, END_HEADERS, 1, b);
        push_frame(&mut input, 0x0, 0, 1, b"data");

        let mut output = Vec::new();
        let mut reader = input.as_slice();
        let result = rewrite_client_frames(&mut reader, &mut output).await;
        assert_eq!(
            result.map_err(|e| e.kind()),
            Err(io::ErrorKind::UnexpectedEof)
        );

        let frames = &output[PREFACE_LEN..];
        assert_eq!(frames[3], HEADERS);
        assert_eq!(frames[4], PRIORITY | END_STREAM | END_HEADERS);
        let len = usize::from(frames[2]);
        let fragment = &frames[FRAME_HEADER_LEN + 5..FRAME_HEADER_LEN + len];
        let headers = Decoder::new().decode(fragment).unwrap_or_default();
        assert_eq!(
            headers[1],
            (b":authority".to_vec(), b"127.0.0.1:2379".to_vec())
        );
        assert_eq!(headers[2].1, b"/etcdserverpb.Maintenance/Status");
        let data = &frames[FRAME_HEADER_LEN + len..];
        assert_eq!(data[3], 0x0);
        assert_eq!(&data[FRAME_HEADER_LEN..], b"data");
    }

    /// A first block whose authority is already `host:port` is forwarded
    /// as it came, and so is everything after it, header blocks included.
    #[tokio::test]
    async fn a_connection_that_needs_no_rewrite_passes_unchanged() {
        let mut client = Encoder::new();
        let mut input = vec![0u8; PREFACE_LEN];
        for path in [&b"/etcdserverpb.KV/Range"[..], b"/etcdserverpb.KV/Put"] {
            let block = client.encode([
                (&b":method"[..], &b"POST"[..]),
                (b":authority", b"127.0.0.1:2379"),
                (b":path", path),
            ]);
            push_frame(&mut input, HEADERS, END_HEADERS, 1, &block);
            push_frame(&mut input, 0x0, 0, 1, b"data");
        }
        let mut output = Vec::new();
        let mut reader = input.as_slice();
        let result = rewrite_client_frames(&mut reader, &mut output).await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(output, input);
    }

    fn push_frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u8, payload: &[u8]) {
        let len = payload.len();
        out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
        out.extend_from_slice(&[0, 0, 0, stream]);
        out.extend_from_slice(payload);
    }
}
