//! HTTP response bodies read under a cap: a server (hostile, or broken) that sends more than
//! a reply of its kind can hold is cut off with a clear error instead of filling memory.

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the response body is larger than {} MiB", .limit >> 20)]
    TooLarge { limit: usize },
    #[error("the response body could not be read")]
    Transport(#[source] reqwest::Error),
}

/// Reads the whole body of `response`, at most `limit` bytes; more is
/// [`BodyError::TooLarge`] (refused at once when `Content-Length` says so, else as soon as the
/// bytes that arrived pass the limit).
pub async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    let announced = response.content_length().unwrap_or(0);
    if announced > limit as u64 {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = Vec::with_capacity(announced as usize);
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server on 127.0.0.1 that answers one request with `head` and then `filler` without
    /// end (until the client goes).
    async fn hostile(head: &'static [u8]) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            if socket.write_all(head).await.is_err() {
                return;
            }
            let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000)).into_bytes();
            while socket.write_all(&chunk).await.is_ok() {}
        });
        url
    }

    /// Issue 19.7: a body announced over the cap is refused before it is read, and a chunked
    /// body without end is cut off at the cap.
    #[tokio::test]
    async fn bodies_over_the_cap_are_refused_with_a_clear_error() {
        let client = reqwest::Client::new();
        for head in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 2147483648\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            let url = hostile(head).await;
            let response = client.get(&url).send().await.unwrap();
            let err = read_capped(response, 1024 * 1024).await.unwrap_err();
            assert!(
                matches!(err, BodyError::TooLarge { limit: 1048576 }),
                "{err:?}"
            );
            assert_eq!(err.to_string(), "the response body is larger than 1 MiB");
        }
    }
}
