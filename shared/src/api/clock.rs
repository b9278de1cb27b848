//! The broker's notion of "now". Deployed it is the system clock. The local
//! server may add a development offset read from a file (whose content is
//! a whole number of seconds, possibly negative), so end-to-end tests and
//! demos can make grants expire and pending requests lapse without waiting.
//! The offset is only honoured when a development secret is configured
//! (see [`crate::api::local`]).

use crate::domain::Timestamp;
use std::path::PathBuf;
use std::sync::Arc;

/// Where time comes from. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_file: Option<Arc<PathBuf>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// The system clock plus the offset in seconds written in `path`
    /// (read on every call; a missing file means no offset).
    pub fn with_offset_file(path: PathBuf) -> Self {
        Self {
            offset_file: Some(Arc::new(path)),
        }
    }

    /// The current offset from the system clock, in seconds.
    pub fn offset_seconds(&self) -> i64 {
        let Some(path) = &self.offset_file else {
            return 0;
        };
        match std::fs::read_to_string(path.as_ref()) {
            Ok(text) => text.trim().parse::<i64>().unwrap_or_else(|_| {
                tracing::warn!(file = %path.display(), "the clock offset file does not hold a number of seconds; using 0");
                0
            }),
            Err(_) => 0,
        }
    }

    /// Now, by this clock.
    pub fn now(&self) -> Timestamp {
        Timestamp::now().plus(self.offset_seconds())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_file_moves_the_clock_and_junk_means_no_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offset");
        let clock = Clock::with_offset_file(path.clone());
        assert_eq!(clock.offset_seconds(), 0);
        std::fs::write(&path, "3700\n").unwrap();
        assert_eq!(clock.offset_seconds(), 3700);
        let skew = clock.now().seconds_since(Timestamp::now());
        assert!((3699..=3701).contains(&skew), "{skew}");
        std::fs::write(&path, "-60").unwrap();
        assert_eq!(clock.offset_seconds(), -60);
        std::fs::write(&path, "soon").unwrap();
        assert_eq!(clock.offset_seconds(), 0);
        assert_eq!(Clock::system().offset_seconds(), 0);
    }
}
