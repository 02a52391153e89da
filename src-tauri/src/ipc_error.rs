//! Errors cross the IPC boundary as `{code, message}` (DESIGN.md, contracts), with the fields
//! at fault when the core's validation refused settings.

use migrator_core::spec::FieldError;
use serde::Serialize;
use ts_rs::TS;

/// An error the UI can show: a stable `code` to branch on, a readable `message`, and with
/// code `invalid` the fields at fault (camelCase names of the form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[ts(export)]
pub struct IpcError {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub fields: Option<Vec<FieldError>>,
}

impl IpcError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        IpcError {
            code: code.to_string(),
            message: message.into(),
            fields: None,
        }
    }

    /// `Err(invalid)` naming the first problem and carrying all of them, when there are any.
    pub fn refuse_fields(errors: Vec<FieldError>) -> Result<(), IpcError> {
        match errors.first() {
            None => Ok(()),
            Some(first) => Err(IpcError {
                code: "invalid".into(),
                message: first.message.clone(),
                fields: Some(errors),
            }),
        }
    }
}
/// An error's message chain, outermost first: "cannot sign in: the client secret is wrong ...".
pub(crate) fn message_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

impl From<migrator_core::engine::EngineError> for IpcError {
    fn from(e: migrator_core::engine::EngineError) -> Self {
        IpcError::new(e.code(), message_chain(&e))
    }
}

impl From<migrator_core::secrets::SecretStoreError> for IpcError {
    fn from(e: migrator_core::secrets::SecretStoreError) -> Self {
        match e {
            migrator_core::secrets::SecretStoreError::Unavailable(reason) => IpcError::new(
                "keychain.unavailable",
                format!(
                    "No keychain is available on this computer ({reason}). The secret can be kept for this session only: it is then forgotten when the app quits."
                ),
            ),
            migrator_core::secrets::SecretStoreError::Failed(reason) => {
                IpcError::new("keychain.failed", format!("The keychain failed: {reason}"))
            }
        }
    }
}
