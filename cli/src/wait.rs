//! `request --wait` and `wait`: poll the request with backoff (1 s growing to 5 s)
//! until it is decided, showing a spinner with the elapsed time on stderr
//! when stderr is a terminal. Ctrl-C stops waiting (exit 130) and a timeout
//! gives up (exit 8); either way the request itself stays pending.

use crate::client::Client;
use crate::error::{CliError, Exit};
use crate::model::parse_request;
use crate::output::human_seconds;
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};
use tollgate::domain::{RequestId, Status};

/// First poll delay.
const FIRST_DELAY: Duration = Duration::from_secs(1);
/// Longest poll delay.
const MAX_DELAY: Duration = Duration::from_secs(5);
/// Spinner frame interval.
const TICK: Duration = Duration::from_millis(120);
const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// The delay before poll number `n` (from 0): 1 s, 2 s, 4 s, then 5 s.
pub fn poll_delay(n: u32) -> Duration {
    FIRST_DELAY
        .saturating_mul(2u32.saturating_pow(n.min(8)))
        .min(MAX_DELAY)
}

/// A one-line progress display on stderr, drawn only on a terminal.
struct Progress {
    enabled: bool,
    frame: usize,
    started: Instant,
    detail: String,
}

impl Progress {
    fn new(id: RequestId) -> Self {
        Self {
            enabled: std::io::stderr().is_terminal(),
            frame: 0,
            started: Instant::now(),
            detail: format!("waiting for a decision on {id}"),
        }
    }

    fn draw(&mut self) {
        if !self.enabled {
            return;
        }
        self.frame = (self.frame + 1) % FRAMES.len();
        let elapsed = i64::try_from(self.started.elapsed().as_secs()).unwrap_or(i64::MAX);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K{} {} ({} elapsed, Ctrl-C to stop waiting)",
            FRAMES[self.frame],
            self.detail,
            human_seconds(elapsed)
        );
        let _ = err.flush();
    }

    fn clear(&self) {
        if self.enabled {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

/// Polls `GET /requests/{id}` until the request is no longer pending and
/// returns the broker's last answer. Transient failures (broker unavailable)
/// keep the wait going; other errors end it.
pub async fn wait_for_decision(
    client: &Client,
    id: RequestId,
    timeout: Duration,
) -> Result<Value, CliError> {
    let mut progress = Progress::new(id);
    let deadline = tokio::time::Instant::now() + timeout;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut attempt: u32 = 0;
    let mut next_poll = tokio::time::Instant::now() + poll_delay(0);

    let result = loop {
        tokio::select! {
            _ = &mut ctrl_c => {
                break Err(CliError::new(
                    Exit::Interrupted,
                    "interrupted",
                    format!("stopped waiting; request {id} stays pending"),
                )
                .with_hint(format!("wait for it again with `tollgate wait {id}`, withdraw it with `tollgate cancel {id}`")));
            }
            () = tokio::time::sleep_until(deadline) => {
                break Err(CliError::new(
                    Exit::TimedOut,
                    "wait_timed_out",
                    format!(
                        "no decision within {}; request {id} stays pending",
                        human_seconds(i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX))
                    ),
                )
                .with_hint(format!("wait for it again with `tollgate wait {id}` (--timeout sets how long); asking again with `tollgate request` reuses it")));
            }
            _ = ticker.tick() => progress.draw(),
            () = tokio::time::sleep_until(next_poll) => {
                attempt = attempt.saturating_add(1);
                next_poll = tokio::time::Instant::now() + poll_delay(attempt);
                match client.get(id).await {
                    Ok(body) => {
                        let req = parse_request(&body)?;
                        if req.effective_status(crate::clock::now()) != Status::Pending {
                            break Ok(body);
                        }
                        progress.detail = format!(
                            "waiting for approval of {id}: {} of {} approvals",
                            req.approvals.len(),
                            req.approvals_required
                        );
                    }
                    Err(e) if e.exit == Exit::Unavailable => {
                        progress.detail = format!("waiting for {id} (broker unreachable, retrying)");
                    }
                    Err(e) => break Err(e),
                }
            }
        }
    };
    progress.clear();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_backs_off_from_one_to_five_seconds() {
        let delays: Vec<u64> = (0..6).map(|n| poll_delay(n).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 5, 5, 5]);
        assert_eq!(poll_delay(u32::MAX), MAX_DELAY);
    }
}
