//! `tollgate`: the command people use day to day to request, approve and use
//! just-in-time AWS access, and to run the broker locally.

mod args;
mod cache;
mod client;
mod clock;
mod commands;
mod completion;
mod error;
mod model;
mod output;
mod policy_cmd;
mod role_ref;
mod settings;
mod wait;

use args::{AuditCommand, Cli, Command, DevCommand, LocalCommand, PolicyCommand, RolesCommand};
use clap::{CommandFactory, Parser};
use commands::Ctx;
use error::{BROKEN_PIPE, CliError, Exit, REPORTED};
use output::OutputFormat;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e} (runtime)");
            return ExitCode::from(1);
        }
    };
    let env = |k: &str| std::env::var(k).ok();
    let mut ctx = Ctx::new(&env, &cli.global);
    // Not locked for the whole run: `tollgate serve` writes audit lines to
    // stdout from its own tasks.
    let mut stdout = std::io::stdout();
    let result = runtime
        .block_on(run(&mut ctx, &cli.command, &mut stdout))
        .and_then(|()| stdout.flush().map_err(CliError::from));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.code == BROKEN_PIPE => ExitCode::SUCCESS,
        Err(e) if e.code == REPORTED => ExitCode::from(e.exit.code()),
        Err(e) => {
            let mut stderr = std::io::stderr().lock();
            let _ = match ctx.output() {
                OutputFormat::Json => writeln!(stderr, "{}", e.to_json()),
                OutputFormat::Table => e.write_human(&mut stderr),
            };
            ExitCode::from(e.exit.code())
        }
    }
}

async fn run(ctx: &mut Ctx<'_>, command: &Command, out: &mut dyn Write) -> Result<(), CliError> {
    use commands::{audit, credentials, dev, local, policy, requests, roles, serve};
    match command {
        Command::Request(a) => requests::request(ctx, a, out).await,
        Command::Wait(a) => requests::wait(ctx, a, out).await,
        Command::List(a) => requests::list(ctx, a, out).await,
        Command::Show(a) => requests::show(ctx, a, out).await,
        Command::Approve(a) => requests::approve(ctx, a, out).await,
        Command::Deny(a) => requests::deny(ctx, a, out).await,
        Command::Cancel(a) => requests::cancel(ctx, a, out).await,
        Command::Revoke(a) => requests::revoke(ctx, a, out).await,
        Command::Credentials(a) => credentials::run(ctx, a, out).await,
        Command::Console(a) => credentials::console(ctx, a, out).await,
        Command::Extend(a) => requests::extend(ctx, a, out).await,
        Command::Review(a) => requests::review(ctx, a, out).await,
        Command::Explain(a) => requests::explain(ctx, a, out).await,
        Command::Policy(PolicyCommand::Validate(a)) => match policy_cmd::validate(a, out) {
            0 => Ok(()),
            code => Err(CliError::reported(Exit::from_code(code))),
        },
        Command::Policy(PolicyCommand::Publish(a)) => policy::publish(ctx, a, out).await,
        Command::Policy(PolicyCommand::Status(a)) => policy::status(ctx, a, out).await,
        Command::Policy(PolicyCommand::Diff(a)) => policy::diff(ctx, a, out).await,
        Command::Audit(AuditCommand::Verify(a)) => audit::verify(ctx, a, out).await,
        Command::Roles(a) => match &a.command {
            Some(RolesCommand::Check(c)) => roles::check(ctx, c, out).await,
            None => roles::list(ctx, a, out).await,
        },
        Command::Serve(a) => serve::serve(a).await,
        Command::Local(LocalCommand::Provision(a)) => {
            let format = ctx.output();
            local::provision(a, ctx.env, format, out).await
        }
        Command::Dev(DevCommand::Token(a)) => {
            let format = ctx.output();
            dev::token(a, ctx.env, format, out)
        }
        Command::Completions(a) => {
            let mut script = Vec::new();
            clap_complete::generate(a.shell, &mut Cli::command(), "tollgate", &mut script);
            let script = completion::with_role_names(a.shell, &String::from_utf8_lossy(&script));
            out.write_all(script.as_bytes())?;
            Ok(())
        }
    }
}
