//! The limits every PostgreSQL call runs under, and how a driver error maps to a store error.

use crate::StoreError;
use std::time::Duration;

/// How long connecting, or waiting for a pooled connection, may take before the database
/// counts as unavailable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The longest any call may take, connection included, before it fails with `Unavailable`.
pub const OP_TIMEOUT: Duration = Duration::from_secs(5);

/// The server-side limit of one statement, below [`OP_TIMEOUT`] so the server stops first.
pub(crate) const STATEMENT_TIMEOUT_MS: &str = "4000";

/// How long a session may sit idle inside a transaction before the server ends it, so a node
/// that hangs mid-transaction cannot keep rows locked.
pub(crate) const IDLE_IN_TRANSACTION_MS: &str = "30000";

/// Runs `fut` for at most [`OP_TIMEOUT`].
pub(crate) async fn timed<T>(fut: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    tokio::time::timeout(OP_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| Err(StoreError::Unavailable(format!("PostgreSQL did not answer within {OP_TIMEOUT:?}"))))
}

/// The most connections one store opens.
pub(crate) const MAX_CONNECTIONS: u32 = 16;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::ColumnIndexOutOfBounds { .. }
            | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt(e.to_string()),
            // Why: as on SQLite, a refused write (a duplicate run id included) is unavailable.
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}
