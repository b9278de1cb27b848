//! `tollgate serve`: the broker on this machine, the same router the Lambda
//! functions run, with the expiry sweep in-process, against
//! `AWS_ENDPOINT_URL` (the local emulator) or real AWS. Settings come from
//! the `TOLLGATE_*` environment ([`LocalOptions::from_env`]); flags override.

use crate::args::ServeArgs;
use crate::error::{CliError, Exit};
use std::time::Duration;
use tollgate::api::StartupError;
use tollgate::api::local::{LocalOptions, LocalServer, shutdown_signal};
use tollgate::domain::parse_seconds;

/// Longest sweep interval accepted: one hour (as `TOLLGATE_SWEEP_INTERVAL`).
const MAX_SWEEP_SECONDS: u64 = 3600;

fn startup(e: &StartupError) -> CliError {
    let exit = match e {
        StartupError::Config(_) | StartupError::Policy(_) | StartupError::Verifier(_) => {
            Exit::Usage
        }
        _ => Exit::Generic,
    };
    CliError::new(
        exit,
        "startup_failed",
        format!("the broker cannot start: {e}"),
    )
}

/// Applies the flags over options read from the environment.
pub fn options(args: &ServeArgs, mut opts: LocalOptions) -> Result<LocalOptions, CliError> {
    if let Some(addr) = args.addr {
        opts.addr = addr;
    }
    if let Some(dir) = &args.policies {
        opts.config.policy_dir = dir.clone();
    }
    if let Some(table) = &args.table {
        opts.config.table = table.clone();
    }
    if let Some(every) = &args.sweep_interval {
        let secs = parse_seconds(every)?;
        if !(1..=MAX_SWEEP_SECONDS).contains(&secs) {
            return Err(CliError::usage(
                "invalid_input",
                format!(
                    "--sweep-interval `{}` must be from 1 second to 1 hour",
                    crate::output::clean(every)
                ),
            ));
        }
        opts.sweep_interval = Duration::from_secs(secs);
    }
    Ok(opts)
}

/// Runs the local broker until Ctrl-C or SIGTERM. Logs are JSON lines on
/// stderr (`RUST_LOG`, default `info`); audit lines go to stdout.
pub async fn serve(args: &ServeArgs) -> Result<(), CliError> {
    tollgate::api::init_tracing();
    let opts = options(args, LocalOptions::from_env().map_err(|e| startup(&e))?)?;
    let policies = match &opts.config.policy_bucket {
        Some(bucket) => format!(
            "policies from s3://{bucket}/{} checked every {}s, until one is published those in {}",
            opts.config.policy_key,
            opts.config.policy_refresh_seconds,
            opts.config.policy_dir.display()
        ),
        None => format!("policies in {}", opts.config.policy_dir.display()),
    };
    let table = opts.config.table.clone();
    let server = LocalServer::bind(opts).await.map_err(|e| startup(&e))?;
    if let Some(addr) = server.local_addr() {
        eprintln!("tollgate serve: http://{addr} (table `{table}`, {policies}); Ctrl-C stops it");
    }
    server.run(shutdown_signal()).await.map_err(|e| startup(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> ServeArgs {
        let mut argv = vec!["tollgate", "serve"];
        argv.extend_from_slice(extra);
        match crate::args::Cli::try_parse_from(argv).unwrap().command {
            crate::args::Command::Serve(a) => a,
            _ => panic!("parsed as another command"),
        }
    }

    fn base() -> LocalOptions {
        LocalOptions {
            addr: "127.0.0.1:8080".parse().unwrap(),
            config: tollgate::Config::default(),
            sweep_interval: Duration::from_secs(5),
            verifier: Default::default(),
            settings: Default::default(),
            clock_offset_file: None,
        }
    }

    #[test]
    fn flags_override_the_environment_and_absent_flags_keep_it() {
        let o = options(
            &args(&[
                "--addr",
                "127.0.0.1:9999",
                "--policies",
                "/p",
                "--table",
                "t",
                "--sweep-interval",
                "2s",
            ]),
            base(),
        )
        .unwrap();
        assert_eq!(o.addr.port(), 9999);
        assert_eq!(o.config.policy_dir, std::path::PathBuf::from("/p"));
        assert_eq!(o.config.table, "t");
        assert_eq!(o.sweep_interval, Duration::from_secs(2));
        let o = options(&args(&[]), base()).unwrap();
        assert_eq!(o.addr.port(), 8080);
        assert_eq!(o.config.table, "tollgate");
        assert_eq!(o.sweep_interval, Duration::from_secs(5));
    }

    #[test]
    fn sweep_intervals_outside_a_second_to_an_hour_are_refused() {
        for bad in ["0s", "2h", "soon"] {
            let err = options(&args(&["--sweep-interval", bad]), base()).unwrap_err();
            assert_eq!(err.exit, Exit::Usage, "{bad}");
        }
    }
}
