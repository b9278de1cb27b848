//! Shell completion scripts: clap's, with `--role` completing the short
//! names of the roles the caller may request (`tollgate roles --names`,
//! asked when Tab is pressed, so the list is the broker's catalogue as it is
//! then). bash, zsh and fish; other shells complete flags only.

use clap_complete::Shell;

/// The command the scripts run for role names: silent on failure, so a
/// broker that cannot be reached completes nothing rather than an error.
const NAMES: &str = "tollgate roles --names 2>/dev/null";

/// `script` (clap's for `shell`) with `--role` values completed from the
/// catalogue.
pub fn with_role_names(shell: Shell, script: &str) -> String {
    match shell {
        Shell::Bash => script.replace(
            "--role)\n                    COMPREPLY=($(compgen -f \"${cur}\"))",
            &format!(
                "--role)\n                    COMPREPLY=($(compgen -W \"$({NAMES})\" -- \"${{cur}}\"))"
            ),
        ),
        Shell::Zsh => {
            let function = format!(
                "_tollgate_role_names() {{\n    local -a names\n    names=(${{(f)\"$({NAMES})\"}})\n    compadd -a names\n}}\n\n"
            );
            let script = script.replace("]:ROLE:_default'", "]:ROLE:_tollgate_role_names'");
            match script.rfind("if [ \"$funcstack[1]\" = \"_tollgate\" ]") {
                Some(at) => format!("{}{function}{}", &script[..at], &script[at..]),
                None => script,
            }
        }
        Shell::Fish => script
            .lines()
            .map(|line| {
                if line.contains(" -l role -d ") && line.ends_with(" -r") {
                    format!("{line} -f -a \"({NAMES})\"\n")
                } else {
                    format!("{line}\n")
                }
            })
            .collect(),
        _ => script.to_owned(),
    }
}
