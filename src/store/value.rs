//! The values and rows that pass between the store and its engines.
//!
//! Every column of the store's tables is one of four kinds (nothing, a
//! whole number, text, bytes): each engine turns its own types into these
//! and back, so that every operation is written once, above the engines,
//! in the SQL both understand. A value that is not of the kind an
//! operation reads is an error ([`StoreError::Shape`]), never a panic.

use time::{Date, OffsetDateTime};

use super::StoreError;
use crate::availability::DATE;

/// One value of a column, or of a statement's parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<u8> for Value {
    fn from(value: u8) -> Self {
        Self::Int(value.into())
    }
}

impl From<usize> for Value {
    fn from(value: usize) -> Self {
        Self::Int(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

impl From<OffsetDateTime> for Value {
    /// Times are stored as seconds since the Unix epoch, by both engines.
    fn from(value: OffsetDateTime) -> Self {
        Self::Int(value.unix_timestamp())
    }
}

impl From<Date> for Value {
    /// Dates (an absence's) are stored as `YYYY-MM-DD` text, by both
    /// engines: text orders as the dates do.
    fn from(value: Date) -> Self {
        Self::Text(value.format(DATE).unwrap_or_default())
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Self::Text(value.to_owned())
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Self::Text(value)
    }
}

impl From<&[u8]> for Value {
    fn from(value: &[u8]) -> Self {
        Self::Blob(value.to_vec())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Self::Null, Into::into)
    }
}

/// One row an engine read, its columns in the order the query named them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// Takes column `index` out of the row (each column is read once).
    fn take(&mut self, index: usize) -> Value {
        self.0
            .get_mut(index)
            .map_or(Value::Null, |value| std::mem::replace(value, Value::Null))
    }

    /// Column `index`, a whole number.
    ///
    /// # Errors
    /// [`StoreError::Shape`] when it is not one.
    pub fn int(&mut self, index: usize) -> Result<i64, StoreError> {
        match self.take(index) {
            Value::Int(value) => Ok(value),
            other => Err(shape(index, "a whole number", &other)),
        }
    }

    /// Column `index`, a whole number or nothing.
    ///
    /// # Errors
    /// [`StoreError::Shape`] when it is something else.
    pub fn int_or_null(&mut self, index: usize) -> Result<Option<i64>, StoreError> {
        match self.take(index) {
            Value::Null => Ok(None),
            Value::Int(value) => Ok(Some(value)),
            other => Err(shape(index, "a whole number", &other)),
        }
    }

    /// Column `index`, a time (seconds since the Unix epoch).
    ///
    /// # Errors
    /// [`StoreError::Shape`] when it is not a whole number.
    pub fn time(&mut self, index: usize) -> Result<OffsetDateTime, StoreError> {
        self.int(index).map(instant)
    }

    /// Column `index`, a time or nothing.
    ///
    /// # Errors
    /// [`StoreError::Shape`] when it is something else.
    pub fn time_or_null(&mut self, index: usize) -> Result<Option<OffsetDateTime>, StoreError> {
        Ok(self.int_or_null(index)?.map(instant))
    }

    /// Column `index`, a date (`YYYY-MM-DD` text).
    ///
    /// # Errors
    /// [`StoreError::Shape`] when it is not such a date.
    pub fn date(&mut self, index: usize) -> Result<Date, StoreError> {
        let text = self.text(index)?;
        Date::parse(&text, DATE).map_err(|_| {
            StoreError::Shape(format!(
                "column {index} holds text that is no date, where YYYY-MM-DD was expected"
            ))
        })
    }

    /// Column `index`, text.
    ///
    /// # Errors
    /// [`StoreError::Shape`] when it is not text.
    pub fn text(&mut self, index: usize) -> Result<String, StoreError> {
        match self.take(index) {
            Value::Text(value) => Ok(value),
            other => Err(shape(index, "text", &other)),
        }
    }

    /// Column `index`, text or nothing.
    ///
    /// # Errors
    /// [`StoreError::Shape`] when it is something else.
    pub fn text_or_null(&mut self, index: usize) -> Result<Option<String>, StoreError> {
        match self.take(index) {
            Value::Null => Ok(None),
            Value::Text(value) => Ok(Some(value)),
            other => Err(shape(index, "text", &other)),
        }
    }

    /// Column `index`, bytes or nothing.
    ///
    /// # Errors
    /// [`StoreError::Shape`] when it is something else.
    pub fn blob_or_null(&mut self, index: usize) -> Result<Option<Vec<u8>>, StoreError> {
        match self.take(index) {
            Value::Null => Ok(None),
            Value::Blob(value) => Ok(Some(value)),
            other => Err(shape(index, "bytes", &other)),
        }
    }
}

/// Seconds since the Unix epoch, as both engines store times.
pub fn instant(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn shape(index: usize, expected: &str, found: &Value) -> StoreError {
    let found = match found {
        Value::Null => "nothing",
        Value::Int(_) => "a whole number",
        Value::Text(_) => "text",
        Value::Blob(_) => "bytes",
    };
    StoreError::Shape(format!(
        "column {index} holds {found}, where {expected} was expected"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_gives_each_column_as_the_kind_asked_for() {
        let mut row = Row(vec![
            Value::Int(7),
            Value::Null,
            "ccas".into(),
            Value::Blob(vec![1, 2]),
        ]);

        assert_eq!(row.int(0).unwrap(), 7);
        assert_eq!(row.text_or_null(1).unwrap(), None);
        assert_eq!(row.text(2).unwrap(), "ccas");
        assert_eq!(row.blob_or_null(3).unwrap(), Some(vec![1, 2]));
    }

    #[test]
    fn a_column_of_another_kind_is_an_error_not_a_panic() {
        let mut row = Row(vec!["ccas".into()]);

        let error = row.int(0).unwrap_err();

        assert_eq!(
            error.to_string(),
            "the store's data is not what this relais expects: column 0 holds text, where a whole \
             number was expected"
        );
    }
}
