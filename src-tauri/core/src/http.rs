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
