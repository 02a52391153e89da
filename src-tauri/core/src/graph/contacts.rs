//! Contact folders, contacts and contact photos of one mailbox.
//!
//! `/contacts` reads the default Contacts folder, `/contactFolders` lists the folders *under*
//! it, and each folder's children come from `/contactFolders/{id}/childFolders`
//! (api/user-list-contactfolders.md, contactfolder-list-childfolders.md).
//!
//! Contacts are read by per-folder delta, `/contactFolders/{id}/contacts/delta`
//! (api/contact-delta.md; shared reference graph.md §5), which needs the folder's id; the
//! default folder's is the `parentFolderId` of a contact in it (resources/contact.md).

use std::collections::VecDeque;
use std::time::Duration;

use super::client::{ByteSink, GraphClient, GraphError};
use super::mail::segment;
use super::pacer::Pacer;
use super::paging::{Delta, DeltaRound, Pages};
use super::types::{Contact, ContactFolder};

/// Photos larger than this are not migrated (the contact is, with a note): Outlook stores
/// contact photos scaled down to well under a megabyte.
pub const MAX_PHOTO_BYTES: usize = 4 * 1024 * 1024;

/// A contact folder in its tree. The default folder has `id == None`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactFolderNode {
    pub id: Option<String>,
    /// Display names from the top down; empty for the default folder.
    pub path: Vec<String>,
    /// The folder's Graph id, for its delta: `id`, or for the default folder the
    /// `parentFolderId` of a contact in it; `None` when the default folder holds no contact.
    pub graph_id: Option<String>,
}

/// The default folder first, then every folder under it, parents before children. Bad entries
/// are returned apart as (id, reason).
pub async fn contact_folders(
    client: &GraphClient,
    pacer: &Pacer,
    user_id: &str,
    mut on_throttle: impl FnMut(Duration),
) -> Result<(Vec<ContactFolderNode>, Vec<(String, String)>), GraphError> {
    let user = segment(user_id);
    let probe = client.url(&format!(
        "/users/{user}/contacts?$top=1&$select=id,parentFolderId"
    ));
    let first = Pages::<Contact>::new(client, pacer, probe)
        .next_page(&mut on_throttle)
        .await
        .transpose()?;
    let default_id = first
        .and_then(|page| page.items.into_iter().next())
        .and_then(|c| c.parent_folder_id);
    let mut nodes = vec![ContactFolderNode {
        id: None,
        path: Vec::new(),
        graph_id: default_id,
    }];
    let mut bad = Vec::new();
    let mut queue = VecDeque::from([(
        Vec::new(),
        client.url(&format!("/users/{user}/contactFolders?$top=100")),
    )]);
    while let Some((parent_path, url)) = queue.pop_front() {
        let page = Pages::<ContactFolder>::new(client, pacer, url)
            .collect(&mut on_throttle)
            .await?;
        bad.extend(page.bad);
        for folder in page.items {
            let mut path: Vec<String> = parent_path.clone();
            path.push(
                folder
                    .display_name
                    .clone()
                    .unwrap_or_else(|| folder.id.clone()),
            );
            queue.push_back((
                path.clone(),
                client.url(&format!(
                    "/users/{user}/contactFolders/{}/childFolders?$top=100",
                    segment(&folder.id)
                )),
            ));
            nodes.push(ContactFolderNode {
                graph_id: Some(folder.id.clone()),
                id: Some(folder.id),
                path,
            });
        }
    }
    Ok((nodes, bad))
}

/// Pages through the contacts of one folder (`None`: the default folder).
pub fn contacts<'a>(
    client: &'a GraphClient,
    pacer: &'a Pacer,
    user_id: &str,
    folder_id: Option<&str>,
) -> Pages<'a, Contact> {
    let user = segment(user_id);
    let path = match folder_id {
        None => format!("/users/{user}/contacts?$top=100"),
        Some(id) => format!(
            "/users/{user}/contactFolders/{}/contacts?$top=100",
            segment(id)
        ),
    };
    Pages::new(client, pacer, client.url(&path))
}

/// One delta round over the contacts of the folder with Graph id `folder_id`: from `stored`,
/// the deltaLink of the previous round, else a full round.
pub fn contacts_delta<'a>(
    client: &'a GraphClient,
    pacer: &'a Pacer,
    user_id: &str,
    folder_id: &str,
    stored: Option<String>,
) -> DeltaRound<'a, Delta<Contact>> {
    let url = client.url(&format!(
        "/users/{}/contactFolders/{}/contacts/delta",
        segment(user_id),
        segment(folder_id)
    ));
    DeltaRound::new(client, pacer, stored, url)
}

/// Why a photo was not read.
#[derive(Debug, thiserror::Error)]
pub enum PhotoError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("the photo is larger than {MAX_PHOTO_BYTES} bytes")]
    TooLarge,
}

/// A contact's photo as (media type, bytes), or `None` when it has none (Graph answers 404,
/// api/profilephoto-get.md).
pub async fn photo(
    client: &GraphClient,
    pacer: &Pacer,
    user_id: &str,
    contact_id: &str,
    on_throttle: impl FnMut(Duration),
) -> Result<Option<(&'static str, Vec<u8>)>, PhotoError> {
    let url = client.url(&format!(
        "/users/{}/contacts/{}/photo/$value",
        segment(user_id),
        segment(contact_id)
    ));
    let mut sink = PhotoBuffer::default();
    let result = client.download(pacer, &url, &mut sink, on_throttle).await;
    match result {
        Ok(_) => {}
        Err(_) if sink.too_large => return Err(PhotoError::TooLarge),
        Err(e) if e.status() == Some(404) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let media_type = image_type(&sink.bytes);
    Ok(Some((media_type, sink.bytes)))
}

/// The image type from its first bytes (the download does not keep response headers).
fn image_type(bytes: &[u8]) -> &'static str {
    match bytes {
        [0xFF, 0xD8, 0xFF, ..] => "image/jpeg",
        [0x89, b'P', b'N', b'G', ..] => "image/png",
        [b'G', b'I', b'F', b'8', ..] => "image/gif",
        [b'B', b'M', ..] => "image/bmp",
        _ => "application/octet-stream",
    }
}

/// Collects a photo in memory, refusing more than [`MAX_PHOTO_BYTES`].
#[derive(Default)]
struct PhotoBuffer {
    bytes: Vec<u8>,
    too_large: bool,
}

impl ByteSink for PhotoBuffer {
    async fn reset(&mut self) -> std::io::Result<()> {
        self.bytes.clear();
        Ok(())
    }

    async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        if self.bytes.len() + chunk.len() > MAX_PHOTO_BYTES {
            self.too_large = true;
            return Err(std::io::Error::other("photo too large"));
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_types_are_sniffed_from_magic_bytes() {
        assert_eq!(image_type(&[0xFF, 0xD8, 0xFF, 0xE0]), "image/jpeg");
        assert_eq!(image_type(b"\x89PNG\r\n"), "image/png");
        assert_eq!(image_type(b"GIF89a"), "image/gif");
        assert_eq!(image_type(b"??"), "application/octet-stream");
    }
}
