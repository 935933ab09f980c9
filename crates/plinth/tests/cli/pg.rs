//! The PostgreSQL test database (`PLINTH_TEST_DATABASE_URL`) and scratch schemas, for the
//! black-box tests that need them.

use std::process::Command;

/// The test database's URL, or `None` (after saying so) when the tests are skipped.
pub(crate) fn database_url() -> Option<String> {
    match std::env::var("PLINTH_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(std::env::var_os("CI").is_none(), "PLINTH_TEST_DATABASE_URL must be set under CI");
            eprintln!("SKIPPED: PostgreSQL tests of plinth serve need PLINTH_TEST_DATABASE_URL");
            None
        }
    }
}

/// Drops the test's schema when the test ends, pass or fail.
pub(crate) struct Schema {
    pub(crate) url: String,
    pub(crate) name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ =
            Command::new("psql").args([&self.url, "-q", "-c", &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name)]).status();
    }
}
