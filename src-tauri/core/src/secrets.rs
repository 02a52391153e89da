//! Secrets in memory. A [`Secret`] never prints its value: `Debug` and `Display` show
//! `[redacted]`, so a secret that ends up in a log line, an event or an error is harmless.

use std::fmt;

/// A client secret, password or token. Read it with [`Secret::expose`] at the one place that
/// sends it over the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value, for the request that needs it and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("abc~DEF.123");
        assert!(!format!("{s:?}").contains("abc~DEF"));
        assert!(!format!("{s}").contains("abc~DEF"));
        assert_eq!(s.expose(), "abc~DEF.123");
    }
}
