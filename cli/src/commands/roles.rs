//! `tollgate roles check <arn>...`: asks the broker (which reads each role
//! through its account's control role) whether the roles can be brokered,
//! and prints what to fix for each one that cannot. Exits 1 when any
//! cannot, so onboarding pipelines can gate on it.

use super::Ctx;
use crate::args::RolesCheckArgs;
use crate::error::CliError;
use crate::output::{OutputFormat, write_json};
use serde_json::{Value, json};
use std::io::Write;

/// `tollgate roles check`.
pub async fn check(
    ctx: &mut Ctx<'_>,
    args: &RolesCheckArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let format = ctx.output();
    let (client, _) = ctx.client().await?;
    let arns: Vec<&str> = args.roles.iter().map(|r| r.as_str()).collect();
    let body = client.check_roles(&json!({ "role_arns": arns })).await?;
    let roles = body["roles"].as_array().cloned().unwrap_or_default();
    match format {
        OutputFormat::Json => write_json(out, &body)?,
        OutputFormat::Table => render(&roles, out)?,
    }
    let refused = roles
        .iter()
        .filter(|r| r["brokerable"] != Value::Bool(true))
        .count();
    if refused > 0 {
        return Err(CliError::generic(
            "not_brokerable",
            format!("{refused} of {} roles cannot be brokered", roles.len()),
        ));
    }
    Ok(())
}

fn render(roles: &[Value], out: &mut dyn Write) -> std::io::Result<()> {
    let text = |v: &Value| crate::output::clean(v.as_str().unwrap_or(""));
    for role in roles {
        let arn = text(&role["role_arn"]);
        if role["brokerable"] == Value::Bool(true) {
            let hours = |v: &Value| {
                v.as_u64().map_or_else(
                    || "?".to_owned(),
                    |s| format!("{}h{:02}m", s / 3600, s % 3600 / 60),
                )
            };
            writeln!(
                out,
                "ok    {arn}: grants up to {}, {} approval(s), trusted by {}",
                hours(&role["max_grant_seconds"]),
                role["approvals_required"].as_u64().unwrap_or(1),
                role["trusted_broker_principals"]
                    .as_array()
                    .map(|p| p.iter().map(text).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default()
            )?;
        } else {
            writeln!(out, "FIX   {arn}")?;
            for problem in role["problems"].as_array().into_iter().flatten() {
                writeln!(out, "      - {}", text(problem))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brokerable_roles_print_their_terms_and_others_what_to_fix() {
        let roles = [
            json!({"role_arn": "arn:aws:iam::444455556666:role/tollgate/Ops", "brokerable": true,
                   "problems": [], "max_grant_seconds": 7200, "approvals_required": 2,
                   "trusted_broker_principals": ["arn:aws:iam::123456789012:root"]}),
            json!({"role_arn": "arn:aws:iam::444455556666:role/Legacy", "brokerable": false,
                   "problems": ["path \u{1b}[31m", "not tagged"], "trusted_broker_principals": []}),
        ];
        let mut out = Vec::new();
        render(&roles, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "ok    arn:aws:iam::444455556666:role/tollgate/Ops: grants up to 2h00m, 2 approval(s), trusted by arn:aws:iam::123456789012:root\n\
             FIX   arn:aws:iam::444455556666:role/Legacy\n      - path \u{fffd}[31m\n      - not tagged\n"
        );
    }
}
