//! Policies as deployable configuration: the one document that holds a whole
//! policy set (what `tollgate policy publish` uploads and functions read),
//! its version, and which set a process serves — the newest valid one, the
//! last good one when a newer set is invalid, the bundled one only until a
//! stored set was ever loaded. No I/O here: the caller fetches the stored
//! object (`aws::policy_store`) and hands over what it got.

use super::engine::PolicyEngine;
use super::load::{self, PolicyError, PolicyProblem};
use crate::domain::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `format` every stored document names.
pub const DOCUMENT_FORMAT: &str = "tollgate-policies/1";
/// The largest stored document read or published: 1 MiB (a few thousand
/// policies; far above any real set, far below a function's memory).
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// The most files a document may hold.
pub const MAX_FILES: usize = 1000;

/// A whole policy set as one JSON document:
/// `{"format": "tollgate-policies/1", "files": {"<name>.cedar": "<text>", ...}}`.
/// Files load in name order, as [`PolicyEngine::load_dir`] loads a directory,
/// so policy ids and explanations are the same wherever the set comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    format: String,
    files: BTreeMap<String, String>,
}

/// Why a stored document is not a policy set. Nothing is loaded.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// Not a document of the expected form (size, JSON, format, file names).
    #[error("not a policy set document: {0}")]
    Malformed(String),
    /// The policies in it do not load or validate.
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

impl PolicyDocument {
    /// A set with no file.
    pub fn empty() -> Self {
        Self {
            format: DOCUMENT_FORMAT.to_owned(),
            files: BTreeMap::new(),
        }
    }

    /// Every `*.cedar` file directly in `dir`, by file name.
    pub fn from_dir(dir: &Path) -> Result<Self, PolicyError> {
        let files = load::read_dir(dir)?
            .into_iter()
            .map(|(path, text)| {
                let name = Path::new(&path)
                    .file_name()
                    .map_or(path.clone(), |n| n.to_string_lossy().into_owned());
                (name, text)
            })
            .collect();
        Ok(Self {
            format: DOCUMENT_FORMAT.to_owned(),
            files,
        })
    }

    /// Parses a stored document, refusing anything but the exact form: at
    /// most [`MAX_DOCUMENT_BYTES`], known fields only, this format, at most
    /// [`MAX_FILES`] files each named `<name>.cedar` (no path, no control
    /// characters).
    pub fn parse(bytes: &[u8]) -> Result<Self, DocumentError> {
        let malformed = |m: String| DocumentError::Malformed(m);
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(malformed(format!(
                "{} bytes is more than the {MAX_DOCUMENT_BYTES} allowed",
                bytes.len()
            )));
        }
        let doc: Self = serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
        if doc.format != DOCUMENT_FORMAT {
            return Err(malformed(format!(
                "format {} is not `{DOCUMENT_FORMAT}`",
                crate::domain::quote(&doc.format)
            )));
        }
        if doc.files.len() > MAX_FILES {
            return Err(malformed(format!(
                "{} files is more than the {MAX_FILES} allowed",
                doc.files.len()
            )));
        }
        for name in doc.files.keys() {
            check_file_name(name).map_err(malformed)?;
        }
        Ok(doc)
    }

    /// The stored bytes: compact JSON, files in name order, so the same set
    /// always gives the same bytes and digest.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// sha256 of [`PolicyDocument::to_bytes`], hex.
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(self.to_bytes()))
    }

    /// The file names, in load order.
    pub fn file_names(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// Loads and strictly validates the set, naming each file as `name`
    /// maps it in error locations (a directory path for `publish`, so its
    /// messages are those of `policy validate`). A set with no policy is
    /// refused: it would deny every request, which is never what was meant.
    pub fn engine_named(&self, name: impl Fn(&str) -> String) -> Result<PolicyEngine, PolicyError> {
        let engine = self.load(name)?;
        if engine.policy_count() == 0 {
            return Err(PolicyError::Invalid {
                problems: vec![PolicyProblem {
                    file: "(policy set)".to_owned(),
                    line: 1,
                    column: 1,
                    message: "no policies (no *.cedar file, or only empty ones): every request \
                              would be denied"
                        .to_owned(),
                }],
            });
        }
        Ok(engine)
    }

    fn load(&self, name: impl Fn(&str) -> String) -> Result<PolicyEngine, PolicyError> {
        let named: Vec<(String, &str)> = self
            .files
            .iter()
            .map(|(n, t)| (name(n), t.as_str()))
            .collect();
        let sources: Vec<(&str, &str)> = named.iter().map(|(n, t)| (n.as_str(), *t)).collect();
        PolicyEngine::from_sources(&sources)
    }

    /// [`PolicyDocument::engine_named`] with the stored file names.
    pub fn engine(&self) -> Result<PolicyEngine, PolicyError> {
        self.engine_named(str::to_owned)
    }
}

fn check_file_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 255
        && name.ends_with(".cedar")
        && name.len() > ".cedar".len()
        && !name.starts_with('.')
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "file name {} is not a plain `<name>.cedar` (no path, at most 255 bytes)",
            crate::domain::quote(name)
        ))
    }
}

/// Where a loaded set came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The copy bundled with the function (first deploy, or a process with
    /// no store configured).
    Bundled,
    /// The stored object.
    Store,
}

impl Origin {
    /// `bundled` or `store`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Bundled => "bundled",
            Self::Store => "store",
        }
    }
}

/// A validated policy set with its version: what every decision names.
/// Dereferences to its [`PolicyEngine`].
#[derive(Debug, Clone)]
pub struct ActivePolicies {
    engine: PolicyEngine,
    /// The stored object's version id, or `bundled-<digest prefix>`.
    pub version: String,
    /// sha256 of the document, hex: the same content has the same digest
    /// wherever it came from.
    pub digest: String,
    /// Where it came from.
    pub origin: Origin,
}

impl std::ops::Deref for ActivePolicies {
    type Target = PolicyEngine;
    fn deref(&self) -> &PolicyEngine {
        &self.engine
    }
}

impl ActivePolicies {
    /// The bundled set: version `bundled-<first 12 hex digits of the digest>`.
    /// Unlike a stored set, an empty bundled set is allowed (it denies all):
    /// the `expiry` function decides nothing and bundles nothing.
    pub fn bundled(
        doc: &PolicyDocument,
        name: impl Fn(&str) -> String,
    ) -> Result<Self, PolicyError> {
        let digest = doc.digest();
        Ok(Self {
            engine: doc.load(name)?,
            version: format!("bundled-{}", digest.get(..12).unwrap_or(&digest)),
            digest,
            origin: Origin::Bundled,
        })
    }

    /// A stored set at `version`.
    pub fn stored(doc: &PolicyDocument, version: String) -> Result<Self, PolicyError> {
        Ok(Self {
            engine: doc.engine()?,
            version,
            digest: doc.digest(),
            origin: Origin::Store,
        })
    }

    /// A set around an engine loaded some other way (tests, tools).
    pub fn from_engine(engine: PolicyEngine, version: impl Into<String>) -> Self {
        Self {
            engine,
            version: version.into(),
            digest: String::new(),
            origin: Origin::Bundled,
        }
    }

    /// The engine.
    pub fn engine(&self) -> &PolicyEngine {
        &self.engine
    }
}

/// What a conditional read of the stored object found.
#[derive(Debug)]
pub enum Fetched {
    /// The object's ETag still matches the one sent (HTTP 304).
    NotModified,
    /// There is no object (never published, or deleted).
    Missing,
    /// The object, as stored.
    Object {
        /// Its version id (`None`, or `null`, when the bucket is unversioned).
        version_id: Option<String>,
        /// Its ETag, for the next conditional read.
        etag: Option<String>,
        /// Its content.
        body: Vec<u8>,
    },
}

/// What [`PolicyStore::apply`] did.
#[derive(Debug, Clone)]
pub enum Applied {
    /// Nothing new: the set served stays.
    Unchanged,
    /// A new set is served from now on.
    Loaded(Arc<ActivePolicies>),
    /// The stored set is invalid (new, or still the one rejected before):
    /// the last good set stays. Counted as a load failure every time.
    Rejected {
        /// The stored object's version.
        version: String,
        /// Why, for a log line (located problems, one line each).
        reason: String,
        /// Whether this object was rejected before (no new log line needed).
        again: bool,
    },
    /// The object is gone after a stored set was served: the last good set
    /// stays (the bundled set is only for a process that never loaded one).
    Vanished,
}

/// The store's view of a process's policies: the set served, when to check
/// the stored object again, the ETag to send, and the last rejection.
#[derive(Debug)]
pub struct PolicyStore {
    current: Arc<ActivePolicies>,
    refresh: Duration,
    next_check: Option<Instant>,
    /// ETag of the last object seen (loaded or rejected).
    etag: Option<String>,
    rejected: Option<(String, String)>,
}

impl PolicyStore {
    /// Serves `bundled` until a stored set loads; checks at most every `refresh`
    /// (zero: before every decision), the first check due at once.
    pub fn new(bundled: ActivePolicies, refresh: Duration) -> Self {
        Self {
            current: Arc::new(bundled),
            refresh,
            next_check: None,
            etag: None,
            rejected: None,
        }
    }

    /// The set served now.
    pub fn current(&self) -> Arc<ActivePolicies> {
        Arc::clone(&self.current)
    }

    /// The stored version rejected last, and why, while it is still the stored one.
    pub fn rejected(&self) -> Option<(&str, &str)> {
        self.rejected
            .as_ref()
            .map(|(v, r)| (v.as_str(), r.as_str()))
    }

    /// When a check is due at `now`, starts it: returns the ETag to send as
    /// `If-None-Match` (`Some(None)`: none yet) and schedules the next one.
    pub fn begin_check(&mut self, now: Instant) -> Option<Option<String>> {
        if self.next_check.is_some_and(|at| now < at) {
            return None;
        }
        self.next_check = Some(now + self.refresh);
        Some(self.etag.clone())
    }

    /// Takes in what the check found.
    pub fn apply(&mut self, fetched: Fetched) -> Applied {
        match fetched {
            Fetched::NotModified => match &self.rejected {
                Some((version, reason)) => Applied::Rejected {
                    version: version.clone(),
                    reason: reason.clone(),
                    again: true,
                },
                None => Applied::Unchanged,
            },
            Fetched::Missing => {
                self.etag = None;
                self.rejected = None;
                if self.current.origin == Origin::Store {
                    Applied::Vanished
                } else {
                    Applied::Unchanged
                }
            }
            Fetched::Object {
                version_id,
                etag,
                body,
            } => {
                let version_id = version_id.filter(|v| !v.is_empty() && v != "null");
                let loaded = PolicyDocument::parse(&body).map(|doc| {
                    let version = version_id.clone().unwrap_or_else(|| {
                        let d = doc.digest();
                        format!("unversioned-{}", d.get(..12).unwrap_or(&d))
                    });
                    let result = ActivePolicies::stored(&doc, version.clone());
                    (version, result)
                });
                self.etag = etag;
                match loaded {
                    Ok((_, Ok(set))) => {
                        self.rejected = None;
                        if set.digest == self.current.digest && set.version == self.current.version
                        {
                            return Applied::Unchanged;
                        }
                        self.current = Arc::new(set);
                        Applied::Loaded(self.current())
                    }
                    Ok((version, Err(e))) => self.reject(version, &DocumentError::Policy(e)),
                    Err(e) => {
                        let version = version_id.unwrap_or_else(|| "(unversioned)".to_owned());
                        self.reject(version, &e)
                    }
                }
            }
        }
    }

    fn reject(&mut self, version: String, e: &DocumentError) -> Applied {
        let reason = e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        self.rejected = Some((version.clone(), reason.clone()));
        Applied::Rejected {
            version,
            reason,
            again: false,
        }
    }
}

/// What a function records when it loads (or rejects) a set, for
/// `tollgate policy status`: one per function, the latest wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyStatus {
    /// `requests`, `reviews`, `credentials`, `revocations`, or `local` (`tollgate serve`).
    pub function: String,
    /// The version served.
    pub version: String,
    /// Its digest.
    pub digest: String,
    /// `bundled` or `store`.
    pub origin: String,
    /// When it was loaded.
    pub loaded_at: Timestamp,
    /// The newest stored set, when it was rejected: `{version, reason, at}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Rejection>,
}

/// A stored set a function refused to load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// Its version.
    pub version: String,
    /// Why (located problems).
    pub reason: String,
    /// When.
    pub at: Timestamp,
}

impl PolicyStatus {
    /// The status of `function` serving the store's current set (loaded at
    /// `loaded_at`), with the store's last rejection as of `now`.
    pub fn of(function: &str, store: &PolicyStore, loaded_at: Timestamp, now: Timestamp) -> Self {
        let set = store.current();
        Self {
            function: function.to_owned(),
            version: set.version.clone(),
            digest: set.digest.clone(),
            origin: set.origin.as_str().to_owned(),
            loaded_at,
            rejected: store.rejected().map(|(version, reason)| Rejection {
                version: version.to_owned(),
                reason: shortened(reason),
                at: now,
            }),
        }
    }
}

/// The most characters of a refusal's reason a status item keeps: a large
/// invalid set can report more than a DynamoDB item holds (400 KB); the
/// function's log line has it whole.
pub const MAX_STATUS_REASON_CHARS: usize = 2000;

fn shortened(reason: &str) -> String {
    match reason.char_indices().nth(MAX_STATUS_REASON_CHARS) {
        None => reason.to_owned(),
        Some((cut, _)) => format!("{}… (the function's log has the rest)", &reason[..cut]),
    }
}

impl fmt::Display for ActivePolicies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.version, self.origin.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"permit(principal, action == Tollgate::Action::"request", resource);"#;
    const OTHER: &str = r#"permit(principal in Tollgate::Group::"ops", action == Tollgate::Action::"request", resource);"#;
    const BAD: &str = r#"permit(principal, action == Tollgate::Action::"request", resource) when { context.nope };"#;

    fn doc(files: &[(&str, &str)]) -> PolicyDocument {
        PolicyDocument {
            format: DOCUMENT_FORMAT.to_owned(),
            files: files
                .iter()
                .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
                .collect(),
        }
    }

    fn object(version: &str, d: &PolicyDocument) -> Fetched {
        Fetched::Object {
            version_id: Some(version.to_owned()),
            etag: Some(format!("\"etag-{version}\"")),
            body: d.to_bytes(),
        }
    }

    fn bundled() -> ActivePolicies {
        ActivePolicies::bundled(&doc(&[("base.cedar", GOOD)]), str::to_owned).unwrap()
    }

    #[test]
    fn the_same_set_has_the_same_bytes_digest_and_bundled_version() {
        let a = doc(&[("b.cedar", OTHER), ("a.cedar", GOOD)]);
        let b = PolicyDocument::parse(&a.to_bytes()).unwrap();
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.file_names().collect::<Vec<_>>(), ["a.cedar", "b.cedar"]);
        let set = ActivePolicies::bundled(&a, str::to_owned).unwrap();
        assert_eq!(set.version, format!("bundled-{}", &a.digest()[..12]));
        assert_eq!(set.policy_count(), 2);
    }

    #[test]
    fn malformed_documents_are_refused_with_what_is_wrong() {
        let cases: &[(&[u8], &str)] = &[
            (b"not json", "expected"),
            (br#"{"format":"tollgate-policies/2","files":{}}"#, "format"),
            (
                br#"{"format":"tollgate-policies/1","files":{},"extra":1}"#,
                "unknown field",
            ),
            (
                br#"{"format":"tollgate-policies/1","files":{"../x.cedar":""}}"#,
                "file name",
            ),
            (
                br#"{"format":"tollgate-policies/1","files":{"x.txt":""}}"#,
                "file name",
            ),
            (
                br#"{"format":"tollgate-policies/1","files":{".cedar":""}}"#,
                "file name",
            ),
            (br#"{"format":"tollgate-policies/1"}"#, "missing field"),
        ];
        for (bytes, want) in cases {
            let err = PolicyDocument::parse(bytes).unwrap_err().to_string();
            assert!(
                err.contains(want),
                "{}: {err}",
                String::from_utf8_lossy(bytes)
            );
        }
        let big = vec![b' '; MAX_DOCUMENT_BYTES + 1];
        assert!(
            PolicyDocument::parse(&big)
                .unwrap_err()
                .to_string()
                .contains("more than")
        );
    }

    #[test]
    fn an_empty_stored_set_is_invalid() {
        let err = doc(&[("empty.cedar", "// nothing\n")])
            .engine()
            .unwrap_err();
        assert!(err.to_string().contains("no policies"), "{err}");
    }

    #[test]
    fn checks_are_due_at_start_then_after_the_interval() {
        let mut store = PolicyStore::new(bundled(), Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(store.begin_check(t0), Some(None));
        assert_eq!(store.begin_check(t0 + Duration::from_secs(9)), None);
        store.apply(object("v1", &doc(&[("a.cedar", OTHER)])));
        assert_eq!(
            store.begin_check(t0 + Duration::from_secs(10)),
            Some(Some("\"etag-v1\"".to_owned()))
        );
        let mut every = PolicyStore::new(bundled(), Duration::ZERO);
        assert!(every.begin_check(t0).is_some());
        assert!(every.begin_check(t0).is_some());
    }

    #[test]
    fn a_valid_stored_set_replaces_the_bundled_one() {
        let mut store = PolicyStore::new(bundled(), Duration::ZERO);
        assert_eq!(store.current().origin, Origin::Bundled);
        let Applied::Loaded(set) = store.apply(object("v1", &doc(&[("a.cedar", OTHER)]))) else {
            panic!("not loaded");
        };
        assert_eq!(set.version, "v1");
        assert_eq!(set.origin, Origin::Store);
        assert_eq!(store.current().version, "v1");
        assert!(matches!(
            store.apply(Fetched::NotModified),
            Applied::Unchanged
        ));
    }

    #[test]
    fn an_invalid_set_is_rejected_every_check_and_the_last_good_set_kept() {
        let mut store = PolicyStore::new(bundled(), Duration::ZERO);
        store.apply(object("v1", &doc(&[("a.cedar", OTHER)])));
        let Applied::Rejected {
            version,
            reason,
            again,
        } = store.apply(object("v2", &doc(&[("a.cedar", BAD)])))
        else {
            panic!("not rejected");
        };
        assert_eq!((version.as_str(), again), ("v2", false));
        assert!(reason.contains("a.cedar:1:"), "{reason}");
        assert_eq!(store.current().version, "v1");
        assert!(matches!(
            store.apply(Fetched::NotModified),
            Applied::Rejected { again: true, .. }
        ));
        assert_eq!(store.rejected().map(|r| r.0), Some("v2"));
        // A fixed set is taken and the rejection forgotten.
        assert!(matches!(
            store.apply(object("v3", &doc(&[("a.cedar", GOOD)]))),
            Applied::Loaded(_)
        ));
        assert!(store.rejected().is_none());
    }

    #[test]
    fn an_invalid_first_set_keeps_the_bundled_one() {
        let mut store = PolicyStore::new(bundled(), Duration::ZERO);
        let applied = store.apply(Fetched::Object {
            version_id: Some("v1".into()),
            etag: None,
            body: b"{}".to_vec(),
        });
        assert!(matches!(applied, Applied::Rejected { .. }));
        assert_eq!(store.current().origin, Origin::Bundled);
    }

    #[test]
    fn a_vanished_object_keeps_the_last_stored_set() {
        let mut store = PolicyStore::new(bundled(), Duration::ZERO);
        assert!(matches!(store.apply(Fetched::Missing), Applied::Unchanged));
        store.apply(object("v1", &doc(&[("a.cedar", OTHER)])));
        assert!(matches!(store.apply(Fetched::Missing), Applied::Vanished));
        assert_eq!(store.current().version, "v1");
    }

    #[test]
    fn a_status_keeps_a_long_refusal_reason_short() {
        let mut store = PolicyStore::new(bundled(), Duration::ZERO);
        let many: Vec<(String, String)> = (0..400)
            .map(|i| (format!("f{i:03}.cedar"), BAD.to_owned()))
            .collect();
        let files: Vec<(&str, &str)> = many.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
        assert!(matches!(
            store.apply(object("v2", &doc(&files))),
            Applied::Rejected { .. }
        ));
        assert!(store.rejected().unwrap().1.chars().count() > MAX_STATUS_REASON_CHARS);
        let t = Timestamp::from_unix(1_800_000_000);
        let reason = PolicyStatus::of("requests", &store, t, t)
            .rejected
            .unwrap()
            .reason;
        assert!(
            reason.chars().count() < MAX_STATUS_REASON_CHARS + 50,
            "{}",
            reason.len()
        );
        assert!(reason.contains("f000.cedar:1:"), "{reason}");
        assert!(reason.ends_with("(the function's log has the rest)"));
    }

    #[test]
    fn an_unversioned_object_is_named_by_its_digest() {
        let mut store = PolicyStore::new(bundled(), Duration::ZERO);
        let d = doc(&[("a.cedar", OTHER)]);
        store.apply(Fetched::Object {
            version_id: Some("null".into()),
            etag: None,
            body: d.to_bytes(),
        });
        assert_eq!(
            store.current().version,
            format!("unversioned-{}", &d.digest()[..12])
        );
    }
}
