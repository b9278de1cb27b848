//! A per-user cache of minted credentials, so `credential_process` does not
//! mint (and audit) a new STS session for every AWS CLI call.
//!
//! Files live in `$XDG_CACHE_HOME/tollgate/credentials/` (directory 0700),
//! one per broker, caller and request, named by
//! `sha256(url, caller, request id)`, created with mode 0600 (never widened
//! then narrowed). An entry is reused only while its credentials have more
//! than five minutes left and the grant's window has not ended.

use crate::model::IssuedCredentials;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tollgate::domain::{RequestId, RoleArn, Timestamp};

/// Credentials are reused only while they have more than this left.
pub const REFRESH_MARGIN_SECONDS: i64 = 300;

/// Whether cached credentials may still be handed out at `now`.
pub fn reusable(expiration: Timestamp, window_end: Timestamp, now: Timestamp) -> bool {
    expiration.plus(-REFRESH_MARGIN_SECONDS) > now && now < window_end
}

/// What a caller is, for cache keys: the token's subject when it has one
/// (so a refreshed token keeps its cache), else a hash of the token.
pub fn caller_key(token: &str) -> String {
    jwt_subject(token).map_or_else(
        || format!("token:{}", hex::encode(Sha256::digest(token.as_bytes()))),
        |sub| format!("sub:{sub}"),
    )
}

/// The `sub` claim of a JWT, read without verifying it. Only used to name
/// cache files; the broker verifies the token.
fn jwt_subject(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims
        .get("sub")
        .and_then(serde_json::Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn sha256_of(parts: &[&str]) -> String {
    // A JSON array keeps the parts unambiguous whatever they contain.
    let joined = serde_json::to_string(parts).unwrap_or_default();
    hex::encode(Sha256::digest(joined.as_bytes()))
}

/// Credentials in the cache, with the grant they belong to. Its `Debug`
/// shows no secret (see [`IssuedCredentials`]).
#[derive(Debug)]
pub struct CachedEntry {
    /// The request whose grant minted them.
    pub request_id: RequestId,
    /// Its role.
    pub role_arn: RoleArn,
    /// When the grant's window ends.
    pub window_end: Timestamp,
    /// The credentials.
    pub credentials: IssuedCredentials,
}

#[derive(Deserialize)]
struct StoredEntry {
    version: u32,
    scope: String,
    request_id: RequestId,
    role_arn: RoleArn,
    window_end: Timestamp,
    credentials: IssuedCredentials,
}

/// The cache directory for one user.
#[derive(Debug, Clone)]
pub struct CredentialCache {
    dir: PathBuf,
}

/// Why the cache could not be used. Never fatal: the CLI mints instead.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CacheError(pub String);

impl CredentialCache {
    /// The cache in `dir` (which need not exist yet).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `$XDG_CACHE_HOME/tollgate/credentials`, else `~/.cache/tollgate/credentials`.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Option<Self> {
        let base = env("XDG_CACHE_HOME")
            .filter(|p| Path::new(p).is_absolute())
            .map(PathBuf::from)
            .or_else(|| {
                env("HOME")
                    .filter(|h| !h.is_empty())
                    .map(|h| Path::new(&h).join(".cache"))
            })?;
        Some(Self::at(base.join("tollgate").join("credentials")))
    }

    /// The directory.
    #[cfg(test)]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The scope of a broker and caller: entries are only ever read back
    /// for the same pair.
    pub fn scope(url: &str, caller: &str) -> String {
        sha256_of(&[url, caller])
    }

    fn file_for(url: &str, caller: &str, id: RequestId) -> String {
        format!("{}.json", sha256_of(&[url, caller, &id.to_string()]))
    }

    /// Checks the directory is ours alone, if it exists.
    fn check_dir(&self) -> Result<bool, CacheError> {
        match fs::symlink_metadata(&self.dir) {
            Ok(meta) => {
                if !meta.is_dir() {
                    return Err(CacheError(format!(
                        "`{}` is not a directory",
                        self.dir.display()
                    )));
                }
                if meta.permissions().mode() & 0o077 != 0 {
                    return Err(CacheError(format!(
                        "`{}` is readable by others (mode {:o}); not using it",
                        self.dir.display(),
                        meta.permissions().mode() & 0o777
                    )));
                }
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(CacheError(format!(
                "cannot read `{}`: {e}",
                self.dir.display()
            ))),
        }
    }

    fn read_file(&self, path: &Path, scope: &str) -> Option<CachedEntry> {
        let meta = fs::symlink_metadata(path).ok()?;
        // INVARIANT: only our own 0600 regular files are trusted.
        if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 {
            return None;
        }
        let dir_uid = fs::metadata(&self.dir).ok()?.uid();
        if meta.uid() != dir_uid {
            return None;
        }
        let text = fs::read(path).ok()?;
        let stored: StoredEntry = serde_json::from_slice(&text).ok()?;
        if stored.version != 1 || stored.scope != scope {
            return None;
        }
        Some(CachedEntry {
            request_id: stored.request_id,
            role_arn: stored.role_arn,
            window_end: stored.window_end,
            credentials: stored.credentials,
        })
    }

    /// Reusable credentials for request `id`, if cached.
    pub fn get(
        &self,
        url: &str,
        caller: &str,
        id: RequestId,
        now: Timestamp,
    ) -> Result<Option<CachedEntry>, CacheError> {
        if !self.check_dir()? {
            return Ok(None);
        }
        let path = self.dir.join(Self::file_for(url, caller, id));
        let scope = Self::scope(url, caller);
        Ok(self.read_file(&path, &scope).filter(|e| {
            e.request_id == id && reusable(e.credentials.expiration, e.window_end, now)
        }))
    }

    /// Reusable credentials for any of the caller's grants on `role`,
    /// preferring the grant whose window ends last. Stale files met on the
    /// way are deleted.
    pub fn find_for_role(
        &self,
        url: &str,
        caller: &str,
        role: &RoleArn,
        now: Timestamp,
    ) -> Result<Option<CachedEntry>, CacheError> {
        if !self.check_dir()? {
            return Ok(None);
        }
        let scope = Self::scope(url, caller);
        let entries = fs::read_dir(&self.dir)
            .map_err(|e| CacheError(format!("cannot list `{}`: {e}", self.dir.display())))?;
        let mut best: Option<CachedEntry> = None;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let Some(found) = self.read_file(&path, &scope) else {
                continue;
            };
            if !reusable(found.credentials.expiration, found.window_end, now) {
                let _ = fs::remove_file(&path);
                continue;
            }
            if &found.role_arn == role
                && best
                    .as_ref()
                    .is_none_or(|b| found.window_end > b.window_end)
            {
                best = Some(found);
            }
        }
        Ok(best)
    }

    /// Stores credentials for a grant, when they are worth reusing. The file
    /// is written to a fresh 0600 temporary file and renamed into place.
    pub fn put(
        &self,
        url: &str,
        caller: &str,
        entry: &CachedEntry,
        now: Timestamp,
    ) -> Result<(), CacheError> {
        if !reusable(entry.credentials.expiration, entry.window_end, now) {
            return Ok(());
        }
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| CacheError(format!("cannot create `{}`: {e}", self.dir.display())))?;
        self.check_dir()?;
        let name = Self::file_for(url, caller, entry.request_id);
        let body = serde_json::json!({
            "version": 1,
            "scope": Self::scope(url, caller),
            "request_id": entry.request_id,
            "role_arn": entry.role_arn,
            "window_end": entry.window_end,
            "credentials": entry.credentials.to_json(),
        });
        let tmp = self.dir.join(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            rand_suffix()
        ));
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(body.to_string().as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, self.dir.join(&name))
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            CacheError(format!("cannot write to `{}`: {e}", self.dir.display()))
        })?;
        Ok(())
    }

    /// Forgets cached credentials for request `id` (after a revoke).
    pub fn remove(&self, url: &str, caller: &str, id: RequestId) {
        let _ = fs::remove_file(self.dir.join(Self::file_for(url, caller, id)));
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::{ExposeSecret, SecretString};

    const URL: &str = "http://127.0.0.1:8080/";
    const CALLER: &str = "sub:alice";

    fn role(name: &str) -> RoleArn {
        RoleArn::parse(&format!("arn:aws:iam::123456789012:role/{name}")).unwrap()
    }

    fn entry(
        id: RequestId,
        role: RoleArn,
        expiration: Timestamp,
        window_end: Timestamp,
    ) -> CachedEntry {
        CachedEntry {
            request_id: id,
            role_arn: role,
            window_end,
            credentials: IssuedCredentials {
                access_key_id: "ASIAEXAMPLE".into(),
                secret_access_key: SecretString::from("secret"),
                session_token: SecretString::from("session"),
                expiration,
            },
        }
    }

    fn cache() -> (tempfile::TempDir, CredentialCache) {
        let dir = tempfile::tempdir().unwrap();
        let cache = CredentialCache::at(dir.path().join("tollgate").join("credentials"));
        (dir, cache)
    }

    #[test]
    fn cache_files_are_created_0600_in_a_0700_directory() {
        let (_tmp, cache) = cache();
        let now = Timestamp::now();
        let id = RequestId::generate(now);
        cache
            .put(
                URL,
                CALLER,
                &entry(id, role("A"), now.plus(3600), now.plus(7200)),
                now,
            )
            .unwrap();
        let dir_mode = fs::metadata(cache.dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        let parent_mode = fs::metadata(cache.dir().parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(parent_mode, 0o700);
        let files: Vec<_> = fs::read_dir(cache.dir()).unwrap().flatten().collect();
        assert_eq!(files.len(), 1, "no temporary file is left behind");
        let meta = files[0].metadata().unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let name = files[0].file_name().into_string().unwrap();
        assert_eq!(name.len(), 64 + ".json".len());
        assert!(
            !name.contains(&id.to_string()),
            "file names do not reveal the request"
        );
    }

    #[test]
    fn cached_credentials_round_trip_for_the_same_broker_caller_and_request_only() {
        let (_tmp, cache) = cache();
        let now = Timestamp::now();
        let id = RequestId::generate(now);
        cache
            .put(
                URL,
                CALLER,
                &entry(id, role("A"), now.plus(3600), now.plus(7200)),
                now,
            )
            .unwrap();
        let got = cache.get(URL, CALLER, id, now).unwrap().unwrap();
        assert_eq!(got.credentials.secret_access_key.expose_secret(), "secret");
        assert_eq!(got.credentials.session_token.expose_secret(), "session");
        assert_eq!(got.window_end, now.plus(7200));
        assert!(cache.get(URL, "sub:bob", id, now).unwrap().is_none());
        assert!(
            cache
                .get("https://other/", CALLER, id, now)
                .unwrap()
                .is_none()
        );
        assert!(
            cache
                .get(URL, CALLER, RequestId::generate(now), now)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn credentials_are_reused_only_until_five_minutes_before_expiry_and_within_the_window() {
        let now = Timestamp::from_unix(1_000_000);
        assert!(reusable(now.plus(301), now.plus(3600), now));
        assert!(!reusable(now.plus(300), now.plus(3600), now));
        assert!(!reusable(now.plus(3600), now, now), "window ended");
        assert!(reusable(now.plus(3600), now.plus(1), now));

        let (_tmp, cache) = cache();
        let id = RequestId::generate(now);
        cache
            .put(
                URL,
                CALLER,
                &entry(id, role("A"), now.plus(3600), now.plus(1800)),
                now,
            )
            .unwrap();
        assert!(
            cache
                .get(URL, CALLER, id, now.plus(1799))
                .unwrap()
                .is_some()
        );
        assert!(
            cache
                .get(URL, CALLER, id, now.plus(1800))
                .unwrap()
                .is_none()
        );
        assert!(
            cache
                .get(URL, CALLER, id, now.plus(3300))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn credentials_that_are_not_worth_reusing_are_not_written() {
        let (_tmp, cache) = cache();
        let now = Timestamp::now();
        let id = RequestId::generate(now);
        cache
            .put(
                URL,
                CALLER,
                &entry(id, role("A"), now.plus(200), now.plus(7200)),
                now,
            )
            .unwrap();
        assert!(!cache.dir().exists());
    }

    #[test]
    fn role_lookup_prefers_the_latest_window_and_deletes_stale_files() {
        let (_tmp, cache) = cache();
        let now = Timestamp::from_unix(2_000_000_000);
        let (a, b, c) = (
            RequestId::generate(now),
            RequestId::generate(now.plus(1)),
            RequestId::generate(now.plus(2)),
        );
        cache
            .put(
                URL,
                CALLER,
                &entry(a, role("A"), now.plus(3600), now.plus(1000)),
                now,
            )
            .unwrap();
        cache
            .put(
                URL,
                CALLER,
                &entry(b, role("A"), now.plus(3600), now.plus(2000)),
                now,
            )
            .unwrap();
        cache
            .put(
                URL,
                CALLER,
                &entry(c, role("B"), now.plus(3600), now.plus(9000)),
                now,
            )
            .unwrap();
        let best = cache
            .find_for_role(URL, CALLER, &role("A"), now)
            .unwrap()
            .unwrap();
        assert_eq!(best.request_id, b);
        assert!(
            cache
                .find_for_role(URL, "sub:bob", &role("A"), now)
                .unwrap()
                .is_none()
        );
        // Later, a's window has ended: its file goes, b is still served.
        let later = now.plus(1500);
        let best = cache
            .find_for_role(URL, CALLER, &role("A"), later)
            .unwrap()
            .unwrap();
        assert_eq!(best.request_id, b);
        assert_eq!(fs::read_dir(cache.dir()).unwrap().count(), 2);
    }

    #[test]
    fn files_readable_by_others_are_ignored_and_open_directories_refused() {
        let (_tmp, cache) = cache();
        let now = Timestamp::now();
        let id = RequestId::generate(now);
        cache
            .put(
                URL,
                CALLER,
                &entry(id, role("A"), now.plus(3600), now.plus(7200)),
                now,
            )
            .unwrap();
        let file = fs::read_dir(cache.dir())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(cache.get(URL, CALLER, id, now).unwrap().is_none());
        fs::set_permissions(cache.dir(), fs::Permissions::from_mode(0o755)).unwrap();
        let err = cache.get(URL, CALLER, id, now).unwrap_err();
        assert!(err.0.contains("readable by others"), "{}", err.0);
    }

    #[test]
    fn removing_a_request_forgets_its_credentials() {
        let (_tmp, cache) = cache();
        let now = Timestamp::now();
        let id = RequestId::generate(now);
        cache
            .put(
                URL,
                CALLER,
                &entry(id, role("A"), now.plus(3600), now.plus(7200)),
                now,
            )
            .unwrap();
        cache.remove(URL, CALLER, id);
        assert!(cache.get(URL, CALLER, id, now).unwrap().is_none());
    }

    #[test]
    fn the_caller_key_is_the_token_subject_or_a_token_hash() {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let token = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"HS256"}"#),
            b64(r#"{"sub":"alice"}"#)
        );
        assert_eq!(caller_key(&token), "sub:alice");
        let opaque = caller_key("opaque-token");
        assert!(opaque.starts_with("token:"));
        assert!(!opaque.contains("opaque-token"));
    }

    #[test]
    fn the_cache_lives_under_xdg_cache_home_or_home() {
        let env = |k: &str| match k {
            "XDG_CACHE_HOME" => Some("/c".to_owned()),
            "HOME" => Some("/h".to_owned()),
            _ => None,
        };
        assert_eq!(
            CredentialCache::from_env(&env).unwrap().dir(),
            Path::new("/c/tollgate/credentials")
        );
        let env = |k: &str| (k == "HOME").then(|| "/h".to_owned());
        assert_eq!(
            CredentialCache::from_env(&env).unwrap().dir(),
            Path::new("/h/.cache/tollgate/credentials")
        );
    }
}
