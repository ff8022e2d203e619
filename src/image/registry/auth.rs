//! Registry credentials in the containers-auth.json(5) format, which
//! Podman, Skopeo and Docker share:
//! `{"auths": {"host[:port][/path]": {"auth": base64("user:password")}}}`.
//!
//! Owns where the files are, looking a registry up in them (the most
//! specific key wins, as in c/image), and adding or removing an entry for
//! `hutch login`/`logout`, written atomically with mode 0600. Runs in the
//! `hutch` process. Credential helpers (`credHelpers`, `credsStore`) and
//! Docker's `identitytoken` are not supported.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::image::blob;

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials {{ username: {:?}, password: <hidden> }}",
            self.username
        )
    }
}

impl Credentials {
    /// The `auth` value: base64 of `user:password`.
    pub fn encode(&self) -> String {
        let plain = format!("{}:{}", self.username, self.password);
        base64::engine::general_purpose::STANDARD.encode(plain)
    }

    /// Decodes an `auth` value.
    pub fn decode(auth: &str) -> anyhow::Result<Credentials> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| anyhow::anyhow!("decode `auth`: not base64"))?;
        let text =
            String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("decode `auth`: not UTF-8"))?;
        let Some((user, pass)) = text.split_once(':') else {
            anyhow::bail!("decode `auth`: expected `user:password`");
        };
        if user.is_empty() {
            anyhow::bail!("decode `auth`: the user name is empty");
        }
        Ok(Credentials {
            username: user.to_owned(),
            password: pass.to_owned(),
        })
    }
}

/// The files read, in order: `$REGISTRY_AUTH_FILE`,
/// `$XDG_RUNTIME_DIR/containers/auth.json`,
/// `$XDG_CONFIG_HOME/containers/auth.json` (or `~/.config/...`),
/// `~/.docker/config.json`.
pub fn auth_files() -> Vec<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let home = env("HOME");
    let config_home = env("XDG_CONFIG_HOME").or_else(|| home.as_ref().map(|h| h.join(".config")));
    [
        env("REGISTRY_AUTH_FILE"),
        env("XDG_RUNTIME_DIR").map(|d| d.join("containers/auth.json")),
        config_home.map(|d| d.join("containers/auth.json")),
        home.map(|h| h.join(".docker/config.json")),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Where `hutch login` writes: `$REGISTRY_AUTH_FILE`, else
/// `$XDG_RUNTIME_DIR/containers/auth.json`.
pub fn write_path() -> anyhow::Result<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(p) = env("REGISTRY_AUTH_FILE") {
        return Ok(p);
    }
    match env("XDG_RUNTIME_DIR") {
        Some(d) => Ok(d.join("containers/auth.json")),
        None => anyhow::bail!(
            "find the credentials file: neither `REGISTRY_AUTH_FILE` nor `XDG_RUNTIME_DIR` is set"
        ),
    }
}

/// Credentials from one file; a missing file has none.
pub fn lookup_in(
    path: &Path,
    registry: &str,
    repository: &str,
) -> anyhow::Result<Option<Credentials>> {
    let Some(doc) = read(path)? else {
        return Ok(None);
    };
    let Some(auths) = doc.get("auths").and_then(Value::as_object) else {
        return Ok(None);
    };
    // `host/a/b` before `host/a` before `host`.
    let wanted = normalize_key(&format!("{registry}/{repository}"));
    let mut candidates: Vec<&str> = wanted
        .match_indices('/')
        .map(|(i, _)| wanted.get(..i).unwrap_or_default())
        .collect();
    candidates.push(&wanted);
    for candidate in candidates.into_iter().rev() {
        for (key, entry) in auths {
            if normalize_key(key) != candidate {
                continue;
            }
            let auth = entry
                .get("auth")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if auth.is_empty() {
                continue;
            }
            return Credentials::decode(auth)
                .map(Some)
                .with_context(|| format!("read `auths.\"{key}\"` in `{}`", path.display()));
        }
    }
    Ok(None)
}

/// Adds or replaces the entry for `key` (`host[:port][/path]`).
pub fn add(path: &Path, key: &str, creds: &Credentials) -> anyhow::Result<()> {
    let mut doc = read(path)?.unwrap_or_else(|| Value::Object(Map::new()));
    let auths = auths_mut(&mut doc, path)?;
    let mut entry = Map::new();
    entry.insert("auth".into(), Value::String(creds.encode()));
    auths.insert(normalize_key(key), Value::Object(entry));
    write_atomic(path, &doc)
}

/// Removes the entry for `key`; returns whether there was one.
pub fn remove(path: &Path, key: &str) -> anyhow::Result<bool> {
    let Some(mut doc) = read(path)? else {
        return Ok(false);
    };
    let auths = auths_mut(&mut doc, path)?;
    let wanted = normalize_key(key);
    let before = auths.len();
    auths.retain(|k, _| normalize_key(k) != wanted);
    if auths.len() == before {
        return Ok(false);
    }
    write_atomic(path, &doc)?;
    Ok(true)
}

/// Empties `auths` (other keys stay); returns whether it held any entry.
pub fn remove_all(path: &Path) -> anyhow::Result<bool> {
    let Some(mut doc) = read(path)? else {
        return Ok(false);
    };
    let auths = auths_mut(&mut doc, path)?;
    if auths.is_empty() {
        return Ok(false);
    }
    auths.clear();
    write_atomic(path, &doc)?;
    Ok(true)
}

/// `https://index.docker.io/v1/` → `docker.io`; `http(s)://h/` → `h`.
pub fn normalize_key(key: &str) -> String {
    let k = key.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let k = k
        .strip_suffix("/v1/")
        .or_else(|| k.strip_suffix("/v2/"))
        .unwrap_or(k);
    let k = k.trim_end_matches('/');
    match k.split_once('/') {
        Some(("index.docker.io" | "registry-1.docker.io", rest)) => format!("docker.io/{rest}"),
        None if matches!(k, "index.docker.io" | "registry-1.docker.io") => "docker.io".into(),
        _ => k.to_owned(),
    }
}

fn read(path: &Path) -> anyhow::Result<Option<Value>> {
    if !path.exists() {
        return Ok(None);
    }
    let bytes = blob::read_capped(path, blob::MAX_JSON)?;
    let doc: Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("parse credentials file `{}`", path.display()))?;
    if !doc.is_object() {
        anyhow::bail!(
            "parse credentials file `{}`: not a JSON object",
            path.display()
        );
    }
    Ok(Some(doc))
}

fn auths_mut<'a>(doc: &'a mut Value, path: &Path) -> anyhow::Result<&'a mut Map<String, Value>> {
    let bad = || anyhow::anyhow!("update `{}`: `auths` is not a JSON object", path.display());
    let obj = doc.as_object_mut().ok_or_else(bad)?;
    obj.entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    obj.get_mut("auths")
        .and_then(Value::as_object_mut)
        .ok_or_else(bad)
}

/// Writes `doc` to a 0600 temporary file beside `path` and renames it
/// over `path`, so a reader never sees half a file.
fn write_atomic(path: &Path, doc: &Value) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("create `{}`", dir.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let mut bytes = serde_json::to_vec_pretty(doc).context("encode credentials")?;
    bytes.push(b'\n');
    let written = (|| {
        let _ = fs::remove_file(&tmp);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.with_context(|| format!("write `{}`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(u: &str, p: &str) -> Credentials {
        Credentials {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn decodes_and_hides_passwords() {
        let c = creds("user", "pa:ss");
        assert_eq!(Credentials::decode(&c.encode()).unwrap(), c);
        assert!(!format!("{c:?}").contains("pa:ss"));
        for bad in ["!!!", "dXNlcg==", "OnBhc3M=", "//79"] {
            assert!(Credentials::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_normalize_like_docker() {
        for (key, want) in [
            ("https://index.docker.io/v1/", "docker.io"),
            ("index.docker.io", "docker.io"),
            ("http://127.0.0.1:5000", "127.0.0.1:5000"),
            ("quay.io/org/", "quay.io/org"),
            ("registry-1.docker.io/library/x", "docker.io/library/x"),
        ] {
            assert_eq!(normalize_key(key), want, "{key}");
        }
    }

    #[test]
    fn most_specific_key_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        let doc = serde_json::json!({"auths": {
            "quay.io": {"auth": creds("host", "p").encode()},
            "quay.io/org": {"auth": creds("org", "p").encode()},
            "https://index.docker.io/v1/": {"auth": creds("hub", "p").encode()},
            "empty.io": {"auth": ""},
            "bad.io": {"auth": "%%%"},
        }});
        fs::write(&path, doc.to_string()).unwrap();
        let user = |reg: &str, repo: &str| lookup_in(&path, reg, repo).unwrap().map(|c| c.username);
        assert_eq!(user("quay.io", "org/app").as_deref(), Some("org"));
        assert_eq!(user("quay.io", "orgx/app").as_deref(), Some("host"));
        assert_eq!(user("docker.io", "library/alpine").as_deref(), Some("hub"));
        assert_eq!(user("empty.io", "x"), None);
        assert_eq!(user("other.io", "x"), None);
        let err = format!("{:#}", lookup_in(&path, "bad.io", "x").unwrap_err());
        assert!(
            err.contains("`auths.\"bad.io\"`") && err.contains("not base64"),
            "{err}"
        );
        assert_eq!(
            lookup_in(&dir.path().join("none"), "quay.io", "x").unwrap(),
            None
        );
        fs::write(&path, "[1]").unwrap();
        assert!(lookup_in(&path, "quay.io", "x").is_err());
    }

    #[test]
    fn add_and_remove_keep_other_keys_and_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/auth.json");
        add(&path, "127.0.0.1:5000", &creds("u", "p")).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let mut doc: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        doc["credHelpers"] = serde_json::json!({"x.io": "pass"});
        fs::write(&path, doc.to_string()).unwrap();
        add(&path, "https://quay.io/", &creds("q", "p")).unwrap();
        let got = lookup_in(&path, "127.0.0.1:5000", "a").unwrap();
        assert_eq!(got, Some(creds("u", "p")));
        assert!(remove(&path, "127.0.0.1:5000").unwrap());
        assert!(!remove(&path, "127.0.0.1:5000").unwrap());
        assert_eq!(lookup_in(&path, "127.0.0.1:5000", "a").unwrap(), None);
        let doc: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(doc["credHelpers"]["x.io"], "pass");
        assert!(doc["auths"]["quay.io"]["auth"].is_string());
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1, "temporary files left: {names:?}");
        assert!(remove_all(&path).unwrap());
        assert!(!remove_all(&path).unwrap());
        let doc: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(doc["credHelpers"]["x.io"], "pass");
        assert_eq!(lookup_in(&path, "quay.io", "a").unwrap(), None);
        assert!(!remove_all(&dir.path().join("none")).unwrap());
        fs::write(&path, r#"{"auths": 3}"#).unwrap();
        assert!(add(&path, "x.io", &creds("u", "p")).is_err());
    }
}
