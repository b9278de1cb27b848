//! Local development against the AWS emulator: `tollgate local provision`
//! Local development against the AWS emulator: `tollgate local provision`
//! creates, on `AWS_ENDPOINT_URL`, the table in the broker's account, the
//! control role and example roles in the two local target accounts, the
//! audit key, and the policy store's bucket (versioned).

use super::Env;
use crate::args::ProvisionArgs;
use crate::error::{CliError, Exit};
use crate::output::{OutputFormat, Table, write_json};
use serde_json::json;
use std::io::Write;

/// The table name: the flag, else `TOLLGATE_TABLE`, else `tollgate`.
pub fn table_name(flag: Option<&str>, env: &Env) -> String {
    flag.map(str::to_owned)
        .or_else(|| env("TOLLGATE_TABLE").filter(|t| !t.trim().is_empty()))
        .unwrap_or_else(|| tollgate::Config::default().table)
}

/// `error: cause: cause` for an AWS failure; the operator running the CLI
/// sees what AWS said (the broker never sends this to its HTTP callers).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    crate::output::clean(&out)
}

/// A failure from the AWS adapters as the CLI reports it.
pub fn aws_error(e: &tollgate::aws::AwsError) -> CliError {
    let exit = match e {
        tollgate::aws::AwsError::Unavailable(_) => Exit::Unavailable,
        _ => Exit::Generic,
    };
    CliError::new(exit, "aws_error", error_chain(e))
}

/// A failure from the DynamoDB store as the CLI reports it.
pub fn store_error(e: &tollgate::aws::StoreError) -> CliError {
    let exit = match e {
        tollgate::aws::StoreError::Unavailable(_) => Exit::Unavailable,
        _ => Exit::Generic,
    };
    CliError::new(exit, "store_error", error_chain(e))
}

/// `tollgate local provision`: only with `AWS_ENDPOINT_URL` set, so it never
/// creates example roles in a real account by accident.
pub async fn provision(
    args: &ProvisionArgs,
    env: &Env,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let Some(endpoint) = env("AWS_ENDPOINT_URL").filter(|e| !e.trim().is_empty()) else {
        return Err(CliError::usage(
            "local_only",
            "`tollgate local provision` creates example roles and only runs against a local emulator: set AWS_ENDPOINT_URL",
        )
        .with_hint("`scripts/aws-local start` starts one and prints the variables to set"));
    };
    let table = table_name(args.table.as_deref(), env);
    let sdk = tollgate::aws::load_sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let iam = aws_sdk_iam::Client::new(&sdk);
    let sts = aws_sdk_sts::Client::new(&sdk);
    let done = tollgate::aws::provision(&dynamodb, &iam, &sts, &table)
        .await
        .map_err(|e| aws_error(&e))?;
    let policy_bucket = env("TOLLGATE_POLICY_BUCKET")
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| tollgate::aws::LOCAL_POLICY_BUCKET.to_owned());
    tollgate::aws::ensure_bucket(&tollgate::aws::s3_client(&sdk), &policy_bucket)
        .await
        .map_err(|e| aws_error(&e))?;
    let kms = aws_sdk_kms::Client::new(&sdk);
    let audit_key = tollgate::aws::ensure_audit_key(&kms, tollgate::aws::DEFAULT_AUDIT_KEY)
        .await
        .map_err(|e| aws_error(&e))?;
    match format {
        OutputFormat::Json => write_json(
            out,
            &json!({
                "endpoint": endpoint,
                "table": done.table,
                "table_created": done.table_created,
                "broker_account": tollgate::aws::LOCAL_BROKER_ACCOUNT,
                "control_roles": done.control_roles,
                "roles": done.roles,
                "audit_key": audit_key,
                "audit_key_alias": tollgate::aws::DEFAULT_AUDIT_KEY,
                "policy_bucket": policy_bucket,
            }),
        )?,
        OutputFormat::Table => {
            let what = if done.table_created {
                "created"
            } else {
                "already existed"
            };
            writeln!(
                out,
                "table {} {what} at {endpoint} (broker account {})",
                done.table,
                tollgate::aws::LOCAL_BROKER_ACCOUNT
            )?;
            writeln!(
                out,
                "audit key {audit_key} ({})",
                tollgate::aws::DEFAULT_AUDIT_KEY
            )?;
            writeln!(
                out,
                "policy store bucket {policy_bucket} (versioned; `tollgate policy publish` writes to it)"
            )?;
            let mut t = Table::new(&["ACCOUNT", "ROLE"]);
            for role in done.control_roles.iter().chain(&done.roles) {
                t.push(vec![role.account().to_owned(), role.to_string()]);
            }
            t.write(out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_comes_from_the_flag_then_the_environment_then_the_default() {
        let env = |k: &str| (k == "TOLLGATE_TABLE").then(|| "from-env".to_owned());
        assert_eq!(table_name(Some("flag"), &env), "flag");
        assert_eq!(table_name(None, &env), "from-env");
        assert_eq!(table_name(None, &|_: &str| None), "tollgate");
    }

    #[tokio::test]
    async fn provisioning_refuses_without_a_local_endpoint() {
        let mut out = Vec::new();
        let err = provision(
            &ProvisionArgs { table: None },
            &|_: &str| None,
            OutputFormat::Table,
            &mut out,
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, "local_only");
        assert_eq!(err.exit, Exit::Usage);
        assert!(out.is_empty());
    }
}
