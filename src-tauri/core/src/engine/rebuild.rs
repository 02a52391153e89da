//! Rebuilding a message whose MIME Graph cannot export ([`crate::graph::mail::undownloadable`])
//! from its properties and attachments ([`crate::convert::rebuilt`]), streamed into the same
//! sink its `$value` would have gone to. Each attachment is downloaded to a spool file first (a
//! retried download starts its file over, never the message), then copied base64-encoded.

use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::spool::Spool;
use crate::convert::rebuilt::{self, Base64Lines};
use crate::graph::client::{ByteSink, GraphClient, GraphError};
use crate::graph::mail::{attachment_value_url, attachments, export_url, MessageExport};
use crate::graph::Pacer;

/// What was rebuilt, for the report.
pub(super) struct Rebuilt {
    pub subject: String,
    pub sent: Option<String>,
    /// Bytes written to the sink.
    pub written: u64,
}

/// Counts what reaches the sink; an I/O failure is a [`GraphError::Sink`] (fatal).
struct Counted<'a, S> {
    sink: &'a mut S,
    url: &'a str,
    written: u64,
}

impl<S: ByteSink> Counted<'_, S> {
    async fn put(&mut self, bytes: &[u8]) -> Result<(), GraphError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.sink
            .write(bytes)
            .await
            .map_err(|source| GraphError::Sink {
                url: self.url.to_string(),
                source,
            })?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

/// Rebuilds message `message_id` of `user_id` into `sink` (reset first). `why` is the reason
/// its MIME could not be exported, written into the message.
pub(super) async fn rebuild<S: ByteSink>(
    client: &GraphClient,
    pacer: &Pacer,
    (user_id, message_id): (&str, &str),
    why: &str,
    sink: &mut S,
    on_throttle: &(impl Fn(Duration) + Sync),
) -> Result<Rebuilt, GraphError> {
    let url = export_url(client, user_id, message_id);
    let export: MessageExport = client.get_json(pacer, &url, on_throttle).await?;
    let listed = attachments(client, pacer, user_id, message_id, on_throttle).await?;
    let sink_error = |source| GraphError::Sink {
        url: url.clone(),
        source,
    };
    sink.reset().await.map_err(sink_error)?;
    let boundary = rebuilt::boundary(message_id);
    let mut out = Counted {
        sink,
        url: &url,
        written: 0,
    };
    out.put(&rebuilt::head(&export, why, &boundary)).await?;
    for attachment in &listed {
        if attachment.is_reference() {
            let what = "it is a link to a file stored elsewhere";
            let part = rebuilt::missing_attachment(attachment, what, &boundary);
            out.put(&part).await?;
            continue;
        }
        let value_url = attachment_value_url(client, user_id, message_id, &attachment.id);
        let mut spool = Spool::new(None).map_err(sink_error)?;
        match client
            .download(pacer, &value_url, &mut spool, on_throttle)
            .await
        {
            Ok(_) => {}
            // Gone meanwhile, or a kind Graph gives no bytes for (api/attachment-get.md: 405).
            Err(e) if matches!(e.status(), Some(404 | 405)) => {
                let what = format!("Graph answered HTTP {}", e.status().unwrap_or_default());
                let part = rebuilt::missing_attachment(attachment, &what, &boundary);
                out.put(&part).await?;
                continue;
            }
            Err(e) => return Err(e),
        }
        out.put(&rebuilt::attachment_head(attachment, &boundary))
            .await?;
        let mut reader = spool.reader().await.map_err(sink_error)?;
        let mut lines = Base64Lines::default();
        let mut buffer = vec![0u8; 57 * 1024];
        loop {
            let n = reader.read(&mut buffer).await.map_err(sink_error)?;
            if n == 0 {
                break;
            }
            out.put(&lines.feed(&buffer[..n])).await?;
        }
        out.put(&lines.finish()).await?;
    }
    out.put(&rebuilt::closing(&boundary)).await?;
    Ok(Rebuilt {
        subject: export.subject.unwrap_or_default(),
        sent: export.sent_date_time.or(export.received_date_time),
        written: out.written,
    })
}
