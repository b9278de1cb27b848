//! The `tollgate` command. For now: the offline policy commands
//! (`policy validate`, `explain`); the client commands join them here.

mod policy_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Just-in-time AWS access: request, approve and use short-lived role grants.
#[derive(Parser, Debug)]
#[command(name = "tollgate", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Work with policy files
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Explain what the policies decide for a request, offline
    Explain(Box<policy_cmd::ExplainArgs>),
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Check every *.cedar file in a directory against the schema
    Validate(policy_cmd::ValidateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    let code = match &cli.command {
        Command::Policy {
            command: PolicyCommand::Validate(args),
        } => policy_cmd::validate(args, &mut out),
        Command::Explain(args) => policy_cmd::explain(args, &mut out),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
