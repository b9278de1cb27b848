//! `tollgate roles [--account A]`: the roles the caller may request, with
//! the terms policy sets for each (`GET /roles`, every page), as a table or
//! JSON; `--names` prints their short forms for shell completion.
//!
//! `tollgate roles check <arn>...`: asks the broker (which reads each role
//! through its account's control role) whether the roles can be brokered,
//! and prints what to fix for each one that cannot. Exits 1 when any
//! cannot, so onboarding pipelines can gate on it.

use super::Ctx;
use crate::args::{RolesArgs, RolesCheckArgs};
use crate::error::CliError;
use crate::output::{OutputFormat, Table, clean, human_seconds, write_json};
use crate::role_ref::{list_roles, short_name};
use serde_json::{Value, json};
use std::io::Write;

/// Roles listed at most.
const MAX_ROLES: usize = 10_000;

/// `tollgate roles`.
pub async fn list(
    ctx: &mut Ctx<'_>,
    args: &RolesArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let format = ctx.output();
    let (client, _) = ctx.client().await?;
    let roles = list_roles(&client, args.account.as_deref(), None, MAX_ROLES).await?;
    if args.names {
        for role in &roles {
            writeln!(out, "{}", clean(&short_name(role)))?;
        }
        return Ok(());
    }
    match format {
        OutputFormat::Json => write_json(out, &Value::Array(roles))?,
        OutputFormat::Table if roles.is_empty() => writeln!(
            out,
            "no role you may request{}",
            args.account
                .as_deref()
                .map_or_else(String::new, |a| format!(" in account {}", clean(a)))
        )?,
        OutputFormat::Table => roles_table(&roles).write(out)?,
    }
    Ok(())
}

/// One row per role: where, how it is approved, for how long, and what
/// else it takes.
fn roles_table(roles: &[Value]) -> Table {
    let mut table = Table::new(&["ROLE", "APPROVAL", "UP TO", "TICKET", "MFA", "NOTES"]);
    for role in roles {
        let t = &role["terms"];
        let secs = |v: &Value| v.as_i64().map_or_else(|| "?".to_owned(), human_seconds);
        let max = t["max_duration_seconds"].as_i64().unwrap_or(0);
        let approvals = t["approvals_required"].as_u64().unwrap_or(1);
        let human = format!(
            "{approvals} approval{}",
            if approvals == 1 { "" } else { "s" }
        );
        let with_ticket = |auto: &Value| {
            if auto["ticket_required"] == Value::Bool(true) {
                " with ticket"
            } else {
                ""
            }
        };
        let approval = match &t["auto_approve"] {
            Value::Null => human,
            auto if auto["max_duration_seconds"].as_i64().unwrap_or(0) >= max => {
                format!("automatic{}", with_ticket(auto))
            }
            auto => format!(
                "automatic up to {}{}, else {human}",
                secs(&auto["max_duration_seconds"]),
                with_ticket(auto)
            ),
        };
        let ticket = if t["ticket_required"] == Value::Bool(true) {
            "required".to_owned()
        } else if let Some(without) = t["max_duration_without_ticket_seconds"].as_i64() {
            format!("over {}", human_seconds(without))
        } else {
            String::new()
        };
        let mut notes = Vec::new();
        if t["available_now"] == Value::Bool(false) {
            notes.push("not now".to_owned());
        }
        let factors: Vec<&str> = t["depends_on"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|f| if f == "source_ip" { "source IP" } else { f })
            .collect();
        if !factors.is_empty() {
            notes.push(format!(
                "depends on {}",
                factors.join(", ").replace('_', " ")
            ));
        }
        table.push(vec![
            short_name(role),
            approval,
            secs(&t["max_duration_seconds"]),
            ticket,
            if t["mfa_required"] == Value::Bool(true) {
                "required".to_owned()
            } else {
                String::new()
            },
            notes.join("; "),
        ]);
    }
    table
}

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
    fn roles_print_as_a_table_of_their_terms() {
        let terms = |auto: Value, extra: Value| {
            let mut t = json!({"available_now": true, "max_duration_seconds": 7200,
                "ticket_required": false, "mfa_required": false, "approvals_required": 1,
                "depends_on": [], "auto_approve": auto});
            for (k, v) in extra.as_object().unwrap() {
                t[k] = v.clone();
            }
            t
        };
        let roles = [
            json!({"account": "111122223333", "account_alias": "staging", "name": "Dev",
                   "terms": terms(json!({"max_duration_seconds": 7200, "ticket_required": false}), json!({}))}),
            json!({"account": "444455556666", "account_alias": null, "name": "Ops\u{1b}",
                   "terms": terms(json!({"max_duration_seconds": 1800, "ticket_required": true}),
                                  json!({"max_duration_without_ticket_seconds": 3600, "approvals_required": 2}))}),
            json!({"account": "444455556666", "account_alias": "prod", "name": "BreakGlass",
                   "terms": terms(Value::Null, json!({"ticket_required": true, "mfa_required": true,
                                  "available_now": false, "depends_on": ["time_of_day", "source_ip"]}))}),
        ];
        let mut out = Vec::new();
        roles_table(&roles).write(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "ROLE               APPROVAL                                           UP TO  TICKET    MFA       NOTES\n\
             staging/Dev        automatic                                          2h\n\
             444455556666/Ops\u{fffd}  automatic up to 30m with ticket, else 2 approvals  2h     over 1h\n\
             prod/BreakGlass    1 approval                                         2h     required  required  not now; depends on time of day, source IP\n"
        );
    }

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
