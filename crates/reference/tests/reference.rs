//! Reference parsing through the public API: LinuxKit's expansion facts,
//! docker's grammar, error texts, and a parse/display round trip.

use proptest::prelude::*;
use slipway_reference::{Digest, Reference, ReferenceError};

const HEX: &str = "7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa";

fn parse(s: &str) -> Reference {
    match Reference::parse(s) {
        Ok(r) => r,
        Err(e) => panic!("{s:?} should parse: {e}"),
    }
}

fn error(s: &str) -> String {
    match Reference::parse(s) {
        Ok(r) => panic!("{s:?} should not parse, got {r}"),
        Err(e) => e.to_string(),
    }
}

/// LinuxKit's `util.ReferenceExpand` facts (its `TestReferenceExpand`), as
/// (input, expansion without default tag, expansion with default tag). Where
/// LinuxKit keeps a three-component Docker Hub path as written, we expand it
/// to the registry it resolves to (see the `Reference` docs).
#[test]
fn linuxkit_reference_expand() {
    let cases = [
        (
            "redis",
            "docker.io/library/redis",
            "docker.io/library/redis:latest",
        ),
        ("foo/bar", "docker.io/foo/bar", "docker.io/foo/bar:latest"),
        (
            "myregistry.io/foo",
            "myregistry.io/foo",
            "myregistry.io/foo:latest",
        ),
        (
            "foo/bar/baz",
            "docker.io/foo/bar/baz",
            "docker.io/foo/bar/baz:latest",
        ),
        (
            "redis:alpine",
            "docker.io/library/redis:alpine",
            "docker.io/library/redis:alpine",
        ),
    ];
    for (input, expanded, with_tag) in cases {
        let r = parse(input);
        assert_eq!(r.to_string(), expanded, "{input}");
        assert_eq!(r.with_default_tag().to_string(), with_tag, "{input}");
    }
}

#[test]
fn normalisation() {
    // (input, domain, repository, tag, digest hex)
    let cases: &[(&str, &str, &str, Option<&str>, bool)] = &[
        ("redis", "docker.io", "library/redis", None, false),
        ("redis:7", "docker.io", "library/redis", Some("7"), false),
        ("docker.io/redis", "docker.io", "library/redis", None, false),
        (
            "docker.io/library/redis",
            "docker.io",
            "library/redis",
            None,
            false,
        ),
        (
            "index.docker.io/redis",
            "docker.io",
            "library/redis",
            None,
            false,
        ),
        (
            "index.docker.io/foo/bar",
            "docker.io",
            "foo/bar",
            None,
            false,
        ),
        (
            "linuxkit/init:v1.2",
            "docker.io",
            "linuxkit/init",
            Some("v1.2"),
            false,
        ),
        ("localhost/foo", "localhost", "foo", None, false),
        (
            "localhost:5000/foo/bar:t",
            "localhost:5000",
            "foo/bar",
            Some("t"),
            false,
        ),
        ("127.0.0.1:5000/x", "127.0.0.1:5000", "x", None, false),
        ("[::1]:5000/x:1", "[::1]:5000", "x", Some("1"), false),
        ("myhost:5000/x", "myhost:5000", "x", None, false),
        ("ghcr.io/a/b/c/d", "ghcr.io", "a/b/c/d", None, false),
        ("Quay.IO/org/app", "Quay.IO", "org/app", None, false),
        (
            "a-b.example/x_y__z.w---v",
            "a-b.example",
            "x_y__z.w---v",
            None,
            false,
        ),
        // A single component with a port-like suffix is a name and a tag.
        (
            "localhost:5000",
            "docker.io",
            "library/localhost",
            Some("5000"),
            false,
        ),
        ("localhost", "docker.io", "library/localhost", None, false),
        (
            "docker.io/library/redis:7@sha256:HEX",
            "docker.io",
            "library/redis",
            Some("7"),
            true,
        ),
        ("redis@sha256:HEX", "docker.io", "library/redis", None, true),
        (
            "r.io:443/a:T_a.g-1@sha256:HEX",
            "r.io:443",
            "a",
            Some("T_a.g-1"),
            true,
        ),
    ];
    for &(input, domain, repository, tag, has_digest) in cases {
        let input = input.replace("HEX", HEX);
        let r = parse(&input);
        assert_eq!(r.domain(), domain, "{input}");
        assert_eq!(r.repository(), repository, "{input}");
        assert_eq!(r.name(), format!("{domain}/{repository}"), "{input}");
        assert_eq!(r.tag(), tag, "{input}");
        assert_eq!(
            r.digest().map(|d| d.hex()),
            has_digest.then_some(HEX),
            "{input}"
        );
    }
}

#[test]
fn display_is_fully_expanded() {
    let r = parse(&format!("redis:7@sha256:{HEX}"));
    assert_eq!(
        r.to_string(),
        format!("docker.io/library/redis:7@sha256:{HEX}")
    );
    let from_str: Reference = "localhost:5000/a".parse().unwrap();
    assert_eq!(from_str.to_string(), "localhost:5000/a");
}

#[test]
fn tag_and_digest_edits() {
    let digest = Digest::sha256_from_hex(HEX).unwrap();
    let r = parse("redis");
    assert_eq!(r.tag(), None);
    assert_eq!(
        r.with_tag("7").unwrap().to_string(),
        "docker.io/library/redis:7"
    );
    let pinned = r.with_tag("7").unwrap().with_digest(digest.clone());
    assert_eq!(
        pinned.to_string(),
        format!("docker.io/library/redis:7@sha256:{HEX}")
    );
    assert_eq!(pinned.digest(), Some(&digest));
    assert_eq!(
        pinned.without_digest().to_string(),
        "docker.io/library/redis:7"
    );
    assert_eq!(
        pinned.without_tag().to_string(),
        format!("docker.io/library/redis@sha256:{HEX}")
    );
    // with_tag keeps the digest.
    assert_eq!(
        pinned.with_tag("8").unwrap().to_string(),
        format!("docker.io/library/redis:8@sha256:{HEX}")
    );
    assert_eq!(
        r.with_tag("bad tag").unwrap_err().to_string(),
        "invalid reference \"docker.io/library/redis:bad tag\": tag \"bad tag\" contains ' '; tags allow letters, digits, '_', '.' and '-'"
    );
    assert_eq!(
        r.with_tag("").unwrap_err().to_string(),
        "invalid reference \"docker.io/library/redis:\": tag \"\" is empty"
    );
}

#[test]
fn default_tag_only_without_tag_or_digest() {
    assert_eq!(parse("redis").with_default_tag().tag(), Some("latest"));
    assert_eq!(parse("redis:7").with_default_tag().tag(), Some("7"));
    let digested = parse(&format!("redis@sha256:{HEX}"));
    assert_eq!(digested.with_default_tag(), digested);
    assert_eq!(digested.with_default_tag().tag(), None);
}

#[test]
fn loopback_registries() {
    for loopback in [
        "localhost/a",
        "localhost:5000/a",
        "127.0.0.1/a",
        "127.0.0.1:5000/a",
        "127.1.2.3:80/a",
        "[::1]/a",
        "[::1]:5000/a",
        "[0:0:0:0:0:0:0:1]:5000/a",
        "LOCALHOST:5000/a",
    ] {
        assert!(parse(loopback).is_loopback_registry(), "{loopback}");
    }
    for remote in [
        "redis",
        "docker.io/a",
        "localhost.example.com/a",
        "128.0.0.1/a",
        "10.0.0.1:5000/a",
        "[::2]:5000/a",
        "127.0.0.1.example/a",
        "myhost:5000/a",
    ] {
        assert!(!parse(remote).is_loopback_registry(), "{remote}");
    }
}

#[test]
fn registry_host() {
    assert_eq!(parse("redis").registry_host(), "registry-1.docker.io");
    assert_eq!(
        parse("index.docker.io/a/b").registry_host(),
        "registry-1.docker.io"
    );
    assert_eq!(parse("ghcr.io/a/b").registry_host(), "ghcr.io");
    assert_eq!(parse("localhost:5000/a").registry_host(), "localhost:5000");
}

#[test]
fn error_messages() {
    let long_component = "a".repeat(256);
    let cases: Vec<(String, String)> = vec![
        ("".into(), "invalid reference: empty string".into()),
        (
            "Foo".into(),
            "invalid reference \"Foo\": repository names must be lowercase".into(),
        ),
        (
            "Foo/bar".into(),
            "invalid reference \"Foo/bar\": repository names must be lowercase".into(),
        ),
        (
            "docker.io/Library/redis".into(),
            "invalid reference \"docker.io/Library/redis\": repository names must be lowercase"
                .into(),
        ),
        (
            " redis".into(),
            "invalid reference \" redis\": ' ' at byte 0 is not allowed; references contain no whitespace or control characters".into(),
        ),
        (
            "redis\n".into(),
            "invalid reference \"redis\\n\": '\\n' at byte 5 is not allowed; references contain no whitespace or control characters".into(),
        ),
        (
            "re\u{0}dis".into(),
            "invalid reference \"re\\0dis\": '\\0' at byte 2 is not allowed; references contain no whitespace or control characters".into(),
        ),
        (
            "red\u{a0}is".into(),
            "invalid reference \"red\\u{a0}is\": '\\u{a0}' at byte 3 is not allowed; references contain no whitespace or control characters".into(),
        ),
        (
            HEX.into(),
            format!("invalid reference \"{HEX}\": a 64-character hex string is an image ID, not a repository name"),
        ),
        (
            ":7".into(),
            "invalid reference \":7\": no repository name before the tag or digest".into(),
        ),
        (
            format!("@sha256:{HEX}"),
            format!("invalid reference \"@sha256:{HEX}\": no repository name before the tag or digest"),
        ),
        (
            "redis:".into(),
            "invalid reference \"redis:\": tag \"\" is empty".into(),
        ),
        (
            "redis:-x".into(),
            "invalid reference \"redis:-x\": tag \"-x\" must start with a letter, digit or '_'".into(),
        ),
        (
            format!("redis:{}", "t".repeat(129)),
            format!("invalid reference \"redis:{t}\": tag \"{t}\" is 129 characters long; at most 128 are allowed", t = "t".repeat(129)),
        ),
        (
            "a:b:c".into(),
            "invalid reference \"a:b:c\": path component \"a:b\" contains ':'; allowed are lowercase letters, digits and the separators '.', '_', '__' and '-'".into(),
        ),
        (
            "redis@".into(),
            "invalid reference \"redis@\": invalid digest: empty string".into(),
        ),
        (
            "redis@sha256:abc".into(),
            "invalid reference \"redis@sha256:abc\": invalid digest: expected 64 hex characters after sha256:, found 3".into(),
        ),
        (
            "redis@md5:abc".into(),
            "invalid reference \"redis@md5:abc\": invalid digest: unsupported algorithm \"md5\", expected sha256 or sha512".into(),
        ),
        (
            format!("redis@sha256:{HEX}@sha256:{HEX}"),
            format!("invalid reference \"redis@sha256:{HEX}@sha256:{HEX}\": invalid digest: '@' at position 64 after sha256: is not a lowercase hex digit (0-9, a-f)"),
        ),
        (
            "/redis".into(),
            "invalid reference \"/redis\": path component \"\" is empty (two slashes in a row, or a leading or trailing slash)".into(),
        ),
        (
            "foo//bar".into(),
            "invalid reference \"foo//bar\": path component \"\" is empty (two slashes in a row, or a leading or trailing slash)".into(),
        ),
        (
            "localhost/".into(),
            "invalid reference \"localhost/\": path component \"\" is empty (two slashes in a row, or a leading or trailing slash)".into(),
        ),
        (
            "foo/.bar".into(),
            "invalid reference \"foo/.bar\": path component \".bar\" must start with a lowercase letter or digit".into(),
        ),
        (
            "foo/bar-".into(),
            "invalid reference \"foo/bar-\": path component \"bar-\" must end with a lowercase letter or digit".into(),
        ),
        (
            "foo/a..b".into(),
            "invalid reference \"foo/a..b\": path component \"a..b\" has the separator \"..\"; allowed separators are '.', '_', '__' and runs of '-'".into(),
        ),
        (
            "ex_ample.com/a".into(),
            "invalid reference \"ex_ample.com/a\": registry \"ex_ample.com\" contains '_'; host names allow letters, digits, '-' and '.'".into(),
        ),
        (
            "localhost:99999/a".into(),
            "invalid reference \"localhost:99999/a\": registry \"localhost:99999\" has the port \"99999\"; a port is a number from 1 to 65535".into(),
        ),
        (
            "-r.io/a".into(),
            "invalid reference \"-r.io/a\": registry \"-r.io\" has the label \"-r\", which starts or ends with '-'".into(),
        ),
        (
            "[::1/a".into(),
            "invalid reference \"[::1/a\": registry \"[::1\" has '[' without a closing ']'".into(),
        ),
        (
            long_component.clone(),
            format!("invalid reference \"{long_component}\": repository name \"library/{long_component}\" is 264 characters long; at most 255 are allowed"),
        ),
    ];
    for (input, message) in cases {
        assert_eq!(error(&input), message, "input {input:?}");
    }
}

#[test]
fn repository_length_limit_is_on_the_path() {
    let path = format!("{}/{}", "a".repeat(127), "b".repeat(127)); // 255
    let r = parse(&format!(
        "a-very-long-registry-name.example.com:5000/{path}"
    ));
    assert_eq!(r.repository().len(), 255);
    let too_long = format!("{path}c");
    assert!(matches!(
        Reference::parse(&format!("r.io/{too_long}")),
        Err(ReferenceError::NameTooLong { length: 256, .. })
    ));
    // "library/" counts, as in docker's normalised name.
    assert!(Reference::parse(&"a".repeat(247)).is_ok());
    assert!(Reference::parse(&"a".repeat(248)).is_err());
}

#[test]
fn uppercase_tag_and_domain_are_fine() {
    let r = parse("Registry.Example.com:5000/app:V1");
    assert_eq!(r.domain(), "Registry.Example.com:5000");
    assert_eq!(r.tag(), Some("V1"));
}

#[test]
fn equality_follows_normalisation() {
    assert_eq!(parse("redis"), parse("docker.io/library/redis"));
    assert_eq!(parse("redis"), parse("index.docker.io/redis"));
    assert_ne!(parse("redis"), parse("redis:latest"));
    let mut refs = [parse("redis:7"), parse("alpine"), parse("ghcr.io/x")];
    refs.sort();
    let names: Vec<String> = refs.iter().map(ToString::to_string).collect();
    assert_eq!(
        names,
        [
            "docker.io/library/alpine",
            "docker.io/library/redis:7",
            "ghcr.io/x"
        ]
    );
}

// ---- round trip -------------------------------------------------------------

fn path_component() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]{1,8}",
        "[a-z0-9]{1,4}(\\.|_|__|-{1,3})[a-z0-9]{1,4}",
    ]
}

fn domain() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("docker.io".to_owned())),
        Just(Some("index.docker.io".to_owned())),
        Just(Some("localhost".to_owned())),
        Just(Some("[::1]:5000".to_owned())),
        (
            "[a-zA-Z0-9]{1,5}(-[a-z0-9]{1,3})?\\.[a-z]{2,4}",
            proptest::option::of(1u16..)
        )
            .prop_map(|(host, port)| Some(match port {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })),
        (1u16..).prop_map(|port| Some(format!("myhost:{port}"))),
    ]
}

fn reference_string() -> impl Strategy<Value = String> {
    (
        domain(),
        proptest::collection::vec(path_component(), 1..4),
        proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
        proptest::option::of("[0-9a-f]{64}"),
    )
        .prop_map(|(domain, path, tag, digest)| {
            let mut s = domain.map(|d| format!("{d}/")).unwrap_or_default();
            s.push_str(&path.join("/"));
            if let Some(tag) = tag {
                s.push(':');
                s.push_str(&tag);
            }
            if let Some(hex) = digest {
                s.push_str("@sha256:");
                s.push_str(&hex);
            }
            s
        })
}

proptest! {
    #[test]
    fn display_round_trips(input in reference_string()) {
        let r = Reference::parse(&input).unwrap();
        let shown = r.to_string();
        prop_assert_eq!(Reference::parse(&shown).unwrap(), r.clone());
        // The display form is a fixed point.
        prop_assert_eq!(Reference::parse(&shown).unwrap().to_string(), shown);
        prop_assert_eq!(r.with_default_tag().with_default_tag(), r.with_default_tag());
    }

    #[test]
    fn never_panics(input in "\\PC{0,80}") {
        let _ = Reference::parse(&input);
    }

    #[test]
    fn never_panics_on_reference_alphabet(input in "[a-zA-Z0-9:/@.\\[\\]_-]{0,40}") {
        if let Ok(r) = Reference::parse(&input) {
            prop_assert_eq!(Reference::parse(&r.to_string()).unwrap(), r);
        }
    }
}
