//! The CLI's "now": the system clock, plus the local broker's development
//! offset when `TOLLGATE_DEV_CLOCK_FILE` is set together with
//! `TOLLGATE_DEV_SECRET` (the local server honours the file only with a
//! development secret too), so the times the CLI shows and the statuses it
//! derives agree with the broker's clock. STS expirations stay on the system
//! clock: the emulator's STS does not move with the broker.

use tollgate::api::clock::Clock;
use tollgate::domain::Timestamp;

/// Now, by the broker's clock as far as this machine can know it.
pub fn now() -> Timestamp {
    now_from(&|k| std::env::var(k).ok())
}

/// [`now`] with the environment supplied (tests).
pub fn now_from(env: &dyn Fn(&str) -> Option<String>) -> Timestamp {
    match (env("TOLLGATE_DEV_CLOCK_FILE"), env("TOLLGATE_DEV_SECRET")) {
        (Some(file), Some(secret)) if !file.is_empty() && !secret.is_empty() => {
            Clock::with_offset_file(file.into()).now()
        }
        _ => Timestamp::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_development_offset_applies_only_with_a_development_secret() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("clock");
        std::fs::write(&file, "7200").unwrap();
        let path = file.to_string_lossy().into_owned();
        let with = |secret: Option<&str>| {
            let path = path.clone();
            let secret = secret.map(str::to_owned);
            now_from(&move |k| match k {
                "TOLLGATE_DEV_CLOCK_FILE" => Some(path.clone()),
                "TOLLGATE_DEV_SECRET" => secret.clone(),
                _ => None,
            })
            .seconds_since(Timestamp::now())
        };
        assert!((7199..=7201).contains(&with(Some("s"))));
        assert!((-1..=1).contains(&with(None)));
        assert!((-1..=1).contains(&now_from(&|_| None).seconds_since(Timestamp::now())));
    }
}
