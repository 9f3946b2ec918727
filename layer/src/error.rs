//! The error `install()` and its parts return.

use std::fmt;
use std::io;

/// Why lastwords could not be installed: what it was doing, and the OS error
/// where there is one.
#[derive(Debug)]
pub struct InitError {
    context: String,
    source: Option<io::Error>,
}

impl InitError {
    pub(crate) fn new(context: String) -> InitError {
        InitError {
            context,
            source: None,
        }
    }

    pub(crate) fn io(context: String, source: io::Error) -> InitError {
        InitError {
            context,
            source: Some(source),
        }
    }
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "lastwords: {}: {}", self.context, source),
            None => write!(f, "lastwords: {}", self.context),
        }
    }
}

impl std::error::Error for InitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}
