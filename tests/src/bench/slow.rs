//! A deliberately slow client's link: a Unix-socket proxy in front of
//! ctnet-api that passes bytes on in small pieces with a pause after each,
//! both ways, like a client on a bad network that is slow to send its
//! requests and slow to read its answers.
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// Bytes passed on at a time, and the pause after each piece.
const PIECE: usize = 16;
const PAUSE: Duration = Duration::from_millis(2);

/// Listens at `listen` and relays every connection to `upstream`, slowly,
/// until the returned task is aborted.
pub fn proxy(listen: &Path, upstream: &Path) -> tokio::task::JoinHandle<()> {
    let listener = UnixListener::bind(listen).expect("bind the slow proxy");
    let upstream: PathBuf = upstream.to_path_buf();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = UnixStream::connect(&upstream).await else { continue };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(relay(cr, sw));
            tokio::spawn(relay(sr, cw));
        }
    })
}

async fn relay(
    mut from: tokio::net::unix::OwnedReadHalf,
    mut to: tokio::net::unix::OwnedWriteHalf,
) {
    let mut buf = [0u8; PIECE];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                tokio::time::sleep(PAUSE).await;
            }
        }
    }
    let _ = to.shutdown().await;
}
