//! The values the journal's statements bind and read, the same for both backends.
//!
//! The journal's SQL is written once, in the dialect both SQLite and PostgreSQL accept
//! (`?N` parameters, which the PostgreSQL backend renders as `$N`; `IS DISTINCT FROM`;
//! `RETURNING`; sums cast to `BIGINT`). Integers are 64-bit, text is UTF-8: nothing else is
//! stored.

use super::JournalError;

/// One bound parameter or one column of a result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Text(String),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Value::Null, Value::Int)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        v.map_or(Value::Null, Value::from)
    }
}

impl From<&Option<String>> for Value {
    fn from(v: &Option<String>) -> Self {
        v.as_deref().into()
    }
}

impl From<&Option<i64>> for Value {
    fn from(v: &Option<i64>) -> Self {
        (*v).into()
    }
}

/// The parameters of one statement: `args![a, b]`.
macro_rules! args {
    ($($v:expr),* $(,)?) => {
        vec![$($crate::journal::sql::Value::from($v)),*]
    };
}
pub(crate) use args;

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row(pub Vec<Value>);

impl Row {
    fn column(&self, i: usize) -> Result<&Value, JournalError> {
        self.0.get(i).ok_or(JournalError::Column { index: i })
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>, JournalError> {
        match self.column(i)? {
            Value::Null => Ok(None),
            Value::Text(t) => Ok(Some(t.clone())),
            Value::Int(_) => Err(JournalError::Column { index: i }),
        }
    }

    pub fn text(&self, i: usize) -> Result<String, JournalError> {
        self.opt_text(i)?.ok_or(JournalError::Column { index: i })
    }

    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, JournalError> {
        match self.column(i)? {
            Value::Null => Ok(None),
            Value::Int(v) => Ok(Some(*v)),
            Value::Text(_) => Err(JournalError::Column { index: i }),
        }
    }

    pub fn int(&self, i: usize) -> Result<i64, JournalError> {
        self.opt_int(i)?.ok_or(JournalError::Column { index: i })
    }

    /// A count or size, never negative.
    pub fn count(&self, i: usize) -> Result<u64, JournalError> {
        Ok(self.int(i)?.max(0) as u64)
    }
}
