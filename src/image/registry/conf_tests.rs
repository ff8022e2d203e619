use super::*;

fn conf(text: &str) -> RegistriesConf {
    RegistriesConf::parse(text, Path::new("/test/registries.conf")).unwrap()
}

fn conf_err(text: &str) -> String {
    let err = RegistriesConf::parse(text, Path::new("/test/registries.conf")).unwrap_err();
    format!("{err:#}")
}

fn names(refs: &[Reference]) -> Vec<String> {
    refs.iter().map(ToString::to_string).collect()
}

fn endpoints(c: &RegistriesConf, r: &str) -> Vec<(String, bool, bool)> {
    c.endpoints(&Reference::parse(r).unwrap())
        .unwrap()
        .into_iter()
        .map(|e| (e.reference.to_string(), e.insecure, e.mirror))
        .collect()
}

#[test]
fn short_names_default_to_docker_hub() {
    let c = RegistriesConf::default();
    assert_eq!(
        names(&c.candidates("alpine").unwrap()),
        ["docker.io/library/alpine:latest"]
    );
    let c =
        conf("unqualified-search-registries = [\"quay.io\", \"docker.io\", \"localhost:5000\"]");
    assert_eq!(
        names(&c.candidates("alpine:3").unwrap()),
        [
            "quay.io/alpine:3",
            "docker.io/library/alpine:3",
            "localhost:5000/alpine:3"
        ]
    );
    assert_eq!(
        names(&c.candidates("ghcr.io/a/b").unwrap()),
        ["ghcr.io/a/b:latest"]
    );
    assert!(c.candidates("Bad").is_err());
}

const MIRRORED: &str = r#"
[[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = "mirror.example.com:5000/hub"
insecure = true
[[registry.mirror]]
location = "mirror2.example.com"

[[registry]]
prefix = "docker.io/library/busybox"
location = "127.0.0.1:5000/test/busybox"
insecure = true

[[registry]]
location = "plain.example.com"
insecure = true
blocked = false

[[registry]]
prefix = "evil.example.com"
blocked = true

[[registry]]
prefix = "*.corp.example"
insecure = true

[[registry]]
prefix = "digest.example.com"
mirror-by-digest-only = true
[[registry.mirror]]
location = "m.example.com"
"#;

#[test]
fn mirrors_come_first_and_longest_prefix_wins() {
    let c = conf(MIRRORED);
    assert_eq!(
        endpoints(&c, "alpine"),
        [
            (
                "mirror.example.com:5000/hub/library/alpine:latest".into(),
                true,
                true
            ),
            (
                "mirror2.example.com/library/alpine:latest".into(),
                false,
                true
            ),
            ("docker.io/library/alpine:latest".into(), false, false),
        ]
    );
    assert_eq!(
        endpoints(&c, "busybox:1.36"),
        [("127.0.0.1:5000/test/busybox:1.36".into(), true, false)]
    );
    // `busybox2` is not below the `busybox` prefix.
    assert_eq!(endpoints(&c, "busybox2").len(), 3);
    assert_eq!(
        endpoints(&c, "plain.example.com/x"),
        [("plain.example.com/x:latest".into(), true, false)]
    );
    assert_eq!(
        endpoints(&c, "plain.example.com.evil/x"),
        [("plain.example.com.evil/x:latest".into(), false, false)]
    );
    assert_eq!(
        endpoints(&c, "a.corp.example:444/x"),
        [("a.corp.example:444/x:latest".into(), true, false)]
    );
    assert!(!endpoints(&c, "corp.example/x")[0].1);
}

#[test]
fn blocked_and_digest_only_mirrors() {
    let c = conf(MIRRORED);
    let r = Reference::parse("evil.example.com/x").unwrap();
    let err = format!("{:#}", c.endpoints(&r).unwrap_err());
    assert!(
        err.contains("is blocked in `/test/registries.conf`"),
        "{err}"
    );
    assert_eq!(endpoints(&c, "digest.example.com/x:1").len(), 1);
    let d = format!("digest.example.com/x@sha256:{}", "ab".repeat(32));
    let eps = endpoints(&c, &d);
    assert_eq!(eps.len(), 2);
    assert!(eps[0].0.starts_with("m.example.com/x@sha256:"), "{eps:?}");
}

#[test]
fn tagged_prefixes_match_at_tag_boundaries_only() {
    let c =
        conf("[[registry]]\nprefix = \"example.com/app:v1\"\nlocation = \"other.com/app:v2\"\n");
    assert_eq!(endpoints(&c, "example.com/app:v1")[0].0, "other.com/app:v2");
    assert_eq!(
        endpoints(&c, "example.com/app:v10")[0].0,
        "example.com/app:v10"
    );
    // A host prefix does not match a longer port.
    let c = conf("[[registry]]\nlocation = \"example.com\"\ninsecure = true\n");
    assert!(!endpoints(&c, "example.com:5000/a")[0].1);
    assert!(endpoints(&c, "example.com/a")[0].1);
}

#[test]
fn hostile_files_name_file_line_and_key() {
    let table: &[(&str, &str)] = &[
        (
            "[[registry]]\nprefix = \"x.io\"\ninsecure = \"yes\"\n",
            "line 3, key `insecure`",
        ),
        (
            "unqualified-search-registries = 3\n",
            "key `unqualified-search-registries`",
        ),
        (
            "unqualified-search-registries = [\"bad host\"]\n",
            "`unqualified-search-registries`",
        ),
        (
            "[[registry]]\n[[registry.mirror]]\ninsecure = true\n",
            "missing field `location`",
        ),
        (
            "[[registry]]\ninsecure = true\n",
            "`prefix` and `location`: both are empty",
        ),
        ("[[registry]]\nlocation = \"UPPER.io/A\"\n", "key `prefix`"),
        (
            "[[registry]]\nprefix = \"a.io\"\nlocation = \"*.b.io\"\n",
            "key `location`",
        ),
        ("[[registry]]\nprefix = \"*.a.io/x\"\n", "wildcard"),
        (
            "[[registry]]\nlocation = \"a.io\"\n[[registry.mirror]]\nlocation = \"../x\"\n",
            "mirror.location",
        ),
        (
            "[registries.search]\nregistries = [\"docker.io\"]\n",
            "version 1 format",
        ),
        ("x = [\n", "line 1"),
        (
            "[[registry]]\nprefix = \"a.io\"\nlocation = \"b.io:99999\"\n",
            "port",
        ),
    ];
    for (text, want) in table {
        let err = conf_err(text);
        assert!(err.contains("`/test/registries.conf`"), "{text}: {err}");
        assert!(err.contains(want), "{text}: {err}");
        assert!(!err.contains('\n'), "{err}");
    }
}

#[test]
fn unknown_keys_are_ignored_and_files_load() {
    let c = conf("short-name-mode = \"enforcing\"\n[aliases]\n\"x\" = \"docker.io/library/x\"\n");
    assert_eq!(
        c,
        RegistriesConf {
            origin: Some("/test/registries.conf".into()),
            ..RegistriesConf::default()
        }
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registries.conf");
    std::fs::write(&path, MIRRORED).unwrap();
    let c = RegistriesConf::load_from(&path).unwrap();
    assert_eq!(c.registries.len(), 6);
    std::fs::write(&path, [0xff, 0xfe]).unwrap();
    let err = format!("{:#}", RegistriesConf::load_from(&path).unwrap_err());
    assert!(err.contains("not UTF-8"), "{err}");
}
