//! Reading policy files: parsing each with its name so errors point at file,
//! line and column, giving every policy a stable id, and validating the whole
//! set strictly against the schema. An invalid set is refused as a whole.

use cedar_policy::{
    Policy, PolicyId, PolicySet, Schema, ValidationMode, ValidationWarning, Validator,
};
use miette::Diagnostic;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A problem in a policy file, located for people: `file:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    /// The file's name as given (a path for [`PolicyEngine::load_dir`](super::PolicyEngine::load_dir)).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong, on one line.
    pub message: String,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Why a policy set could not be loaded. Nothing is loaded in any case.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The directory or a file in it could not be read.
    #[error("cannot read policies from `{}`: {source}", path.display())]
    Io {
        /// What could not be read.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Syntax errors, schema violations or duplicate ids: every one of them.
    #[error("{}", render(problems))]
    Invalid {
        /// Every problem found, in file order.
        problems: Vec<PolicyProblem>,
    },
    /// The built-in schema or names do not parse: a bug, never the user's input.
    #[error("internal error loading policies: {0}")]
    Internal(String),
}

fn render(problems: &[PolicyProblem]) -> String {
    let mut out = format!(
        "{} problem{} in the policies:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        out.push_str("\n  ");
        out.push_str(&p.to_string());
    }
    out
}

impl PolicyError {
    /// Stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Io { .. } => "policy_unreadable",
            Self::Invalid { .. } => "policy_invalid",
            Self::Internal(_) => "policy_internal",
        }
    }

    /// The located problems (empty unless [`PolicyError::Invalid`]).
    pub fn problems(&self) -> &[PolicyProblem] {
        match self {
            Self::Invalid { problems } => problems,
            _ => &[],
        }
    }
}

/// Where a policy came from, and what explain shows for it.
#[derive(Debug, Clone)]
pub(crate) struct PolicyMeta {
    pub description: Option<String>,
    /// Index of the source file in load order.
    pub file: usize,
    pub line: usize,
    pub column: usize,
}

/// A parsed, id-assigned and validated policy set.
pub(crate) struct Loaded {
    pub set: PolicySet,
    /// Policies in load order (file order, then position in the file).
    pub order: Vec<PolicyId>,
    pub meta: HashMap<PolicyId, PolicyMeta>,
    pub files: Vec<String>,
    pub warnings: Vec<String>,
}

/// Reads every `*.cedar` file directly in `dir` (not recursively), sorted by
/// name, as `(path, text)`.
pub(crate) fn read_dir(dir: &Path) -> Result<Vec<(String, String)>, PolicyError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PolicyError::Io { path, source }
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.extension().is_some_and(|e| e == "cedar") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).map_err(io(&p))?;
            Ok((p.display().to_string(), text))
        })
        .collect()
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// One line: Cedar's message, its help when it has one, newlines folded.
fn one_line(d: &dyn Diagnostic) -> String {
    let mut msg = d.to_string();
    if let Some(help) = d.help() {
        msg.push_str("; ");
        msg.push_str(&help.to_string());
    }
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The first labelled offset of a diagnostic, if Cedar located it.
fn first_offset(d: &dyn Diagnostic) -> Option<usize> {
    d.labels()
        .and_then(|mut labels| labels.next())
        .map(|l| l.offset())
}

/// The file stem used in generated policy ids: `prod.cedar` → `prod`.
fn stem(name: &str) -> String {
    Path::new(name)
        .file_stem()
        .map_or_else(|| name.to_owned(), |s| s.to_string_lossy().into_owned())
}

/// The numeric suffix of Cedar's generated ids (`policy12` → 12), for source order.
fn generated_index(id: &PolicyId) -> usize {
    id.to_string()
        .trim_start_matches("policy")
        .parse()
        .unwrap_or(usize::MAX)
}

/// An `@id` must be usable in logs and explanations.
fn check_id(id: &str) -> Result<(), String> {
    if id.trim().is_empty() || id.trim() != id {
        return Err(format!(
            "`@id` {} must be non-empty with no surrounding spaces",
            crate::domain::quote(id)
        ));
    }
    if id.chars().count() > 128 || id.chars().any(char::is_control) {
        return Err(format!(
            "`@id` {} must be at most 128 characters with no control characters",
            crate::domain::quote(id)
        ));
    }
    Ok(())
}

/// Parses, names and validates `sources` (`(name, text)` pairs, in order).
pub(crate) fn load(sources: &[(&str, &str)], schema: &Schema) -> Result<Loaded, PolicyError> {
    let mut problems: Vec<(usize, PolicyProblem)> = Vec::new();
    let mut set = PolicySet::new();
    let mut order = Vec::new();
    let mut meta: HashMap<PolicyId, PolicyMeta> = HashMap::new();
    let files: Vec<String> = sources.iter().map(|(n, _)| (*n).to_owned()).collect();

    for (file_index, (name, text)) in sources.iter().enumerate() {
        let problem = |offset: usize, message: String| {
            let (line, column) = line_col(text, offset);
            (
                file_index,
                PolicyProblem {
                    file: (*name).to_owned(),
                    line,
                    column,
                    message,
                },
            )
        };
        let parsed = match PolicySet::from_str(text) {
            Ok(p) => p,
            Err(errors) => {
                for e in errors.iter() {
                    problems.push(problem(first_offset(e).unwrap_or(0), one_line(e)));
                }
                continue;
            }
        };

        // Policies and templates share Cedar's generated numbering, which
        // follows the source; each one's text is found after the previous one's.
        enum Item<'p> {
            Policy(&'p Policy),
            Template(String),
        }
        let mut items: Vec<(usize, Item<'_>)> = parsed
            .policies()
            .map(|p| (generated_index(p.id()), Item::Policy(p)))
            .chain(
                parsed
                    .templates()
                    .map(|t| (generated_index(t.id()), Item::Template(t.to_cedar()))),
            )
            .collect();
        items.sort_by_key(|(i, _)| *i);

        let mut cursor = 0;
        let mut locate = |source: Option<String>| -> usize {
            let found =
                source.and_then(|s| text[cursor..].find(&s).map(|at| (cursor + at, s.len())));
            match found {
                Some((at, len)) => {
                    cursor = at + len;
                    at
                }
                None => cursor,
            }
        };

        for (index, (_, item)) in items.into_iter().enumerate() {
            let policy = match item {
                Item::Template(source) => {
                    let at = locate(Some(source));
                    problems.push(problem(
                        at,
                        "templates (policies with `?principal` or `?resource`) are not supported; write a static policy".to_owned(),
                    ));
                    continue;
                }
                Item::Policy(p) => p,
            };
            let at = locate(policy.to_cedar());
            let id = match policy.annotation("id") {
                Some(id) => {
                    if let Err(message) = check_id(id) {
                        problems.push(problem(at, message));
                        continue;
                    }
                    id.to_owned()
                }
                None => format!("{}:{index}", stem(name)),
            };
            let policy_id = PolicyId::new(&id);
            if let Some(first) = meta.get(&policy_id) {
                let (first_line, first_col) = (first.line, first.column);
                let first_file = files.get(first.file).cloned().unwrap_or_default();
                problems.push(problem(
                    at,
                    format!(
                        "duplicate policy id `{id}` (first used at {first_file}:{first_line}:{first_col})"
                    ),
                ));
                continue;
            }
            let (line, column) = line_col(text, at);
            if let Err(e) = set.add(policy.new_id(policy_id.clone())) {
                problems.push(problem(at, e.to_string()));
                continue;
            }
            meta.insert(
                policy_id.clone(),
                PolicyMeta {
                    description: policy.annotation("description").map(str::to_owned),
                    file: file_index,
                    line,
                    column,
                },
            );
            order.push(policy_id);
        }
    }

    // Validate whatever parsed, so one run lists every problem.
    let validator = Validator::new(schema.clone());
    let result = validator.validate(&set, ValidationMode::Strict);
    let locate = |id: &PolicyId, d: &dyn Diagnostic| -> (usize, PolicyProblem) {
        let m = meta.get(id);
        let file = m.map_or(0, |m| m.file);
        let name = sources.get(file).map_or("", |s| s.0);
        let text = sources.get(file).map_or("", |s| s.1);
        let (line, column) = match first_offset(d) {
            Some(offset) => line_col(text, offset),
            None => m.map_or((1, 1), |m| (m.line, m.column)),
        };
        (
            file,
            PolicyProblem {
                file: name.to_owned(),
                line,
                column,
                message: one_line(d),
            },
        )
    };
    for e in result.validation_errors() {
        problems.push(locate(e.policy_id(), e));
    }
    let mut warnings = Vec::new();
    for w in result.validation_warnings() {
        let (file, problem) = locate(w.policy_id(), w);
        // INVARIANT: bidirectional control characters can make a policy read
        // differently from how it evaluates; such a policy is refused.
        if matches!(
            w,
            ValidationWarning::BidiCharsInString(_) | ValidationWarning::BidiCharsInIdentifier(_)
        ) {
            problems.push((file, problem));
        } else {
            warnings.push(problem.to_string());
        }
    }

    if !problems.is_empty() {
        // Message last: the validator's order across actions varies from
        // run to run, and the same set must always report the same text.
        problems.sort_by(|(fa, a), (fb, b)| {
            (*fa, a.line, a.column, &a.message).cmp(&(*fb, b.line, b.column, &b.message))
        });
        // The validator repeats an error once per action the policy covers;
        // one report per place is enough to fix it.
        problems.dedup_by_key(|(file, p)| (*file, p.line, p.column));
        return Err(PolicyError::Invalid {
            problems: problems.into_iter().map(|(_, p)| p).collect(),
        });
    }
    Ok(Loaded {
        set,
        order,
        meta,
        files,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters_from_one() {
        let text = "ab\ncdé\nf";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 3), (2, 1));
        assert_eq!(line_col(text, 5), (2, 3));
        assert_eq!(line_col(text, 7), (2, 4));
        assert_eq!(line_col(text, 8), (3, 1));
        assert_eq!(line_col(text, 999), (3, 2));
    }

    #[test]
    fn the_same_invalid_set_always_reports_the_same_problems() {
        // One error per action the policy covers, in an order that varies.
        let text = "permit (principal, action, resource) when { context.nope };";
        let report = || {
            crate::policy::PolicyEngine::from_sources(&[("a.cedar", text)])
                .unwrap_err()
                .to_string()
        };
        let first = report();
        for _ in 0..30 {
            assert_eq!(report(), first);
        }
    }

    #[test]
    fn generated_ids_sort_numerically() {
        assert_eq!(generated_index(&PolicyId::new("policy10")), 10);
        assert_eq!(generated_index(&PolicyId::new("policy2")), 2);
    }
}
