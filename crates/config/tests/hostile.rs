//! Hostile input ends in a clear error from an explicit limit: never a panic,
//! never unbounded time or memory. The tests assert the errors, not timings.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use slipway_config::yaml::{MAX_DEPTH, MAX_FILE_BYTES};
use slipway_config::{Input, load, load_str};

fn errors(text: &str) -> String {
    match load_str("hostile.yml", text) {
        Ok(_) => panic!("hostile input was accepted"),
        Err(e) => e.diagnostics.render_plain(&e.sources),
    }
}

#[test]
fn billion_laughs_hits_the_alias_limit() {
    let mut text = String::from(
        "a0: &a0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n",
    );
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        let items = [prev.as_str(); 9].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{items}]\n"));
    }
    let out = errors(&text);
    assert!(out.starts_with("hostile.yml:"), "{out}");
    assert!(
        out.contains("alias bomb"),
        "the error should name the limit: {out}"
    );
}

#[test]
fn deep_nesting_hits_the_depth_limit() {
    for (open, close) in [("[", "]"), ("{a: ", "}")] {
        let text = format!("x: {}1{}\n", open.repeat(10_000), close.repeat(10_000));
        let out = errors(&text);
        assert!(out.contains("nests deeper than the limit"), "{out}");
    }
    // 1,000 levels of block nesting (10,000 would be over the size limit).
    let mut block = String::new();
    for i in 0..1_000 {
        block.push_str(&" ".repeat(i));
        block.push_str("- \n");
    }
    let out = errors(&block);
    assert!(out.contains("nests deeper than the limit"), "{out}");
    assert!(
        out.starts_with(&format!("hostile.yml:{}:", MAX_DEPTH + 1)),
        "{out}"
    );
}

#[test]
fn nesting_within_the_limit_is_fine_for_the_parser() {
    // Deep, but under the limit: the parser accepts it; the schema rejects the key.
    let depth = MAX_DEPTH - 4;
    let text = format!("x: {}1{}\n", "[".repeat(depth), "]".repeat(depth));
    let out = errors(&text);
    assert!(out.contains("unknown key `x`"), "{out}");
}

#[test]
fn oversized_file_is_refused_before_parsing() {
    let text = format!("# {}\n", "x".repeat(MAX_FILE_BYTES));
    let out = errors(&text);
    assert!(out.contains("limited to"), "{out}");
}

#[test]
fn invalid_utf8_is_located() {
    let err = load(vec![Input {
        name: "bin.yml".into(),
        base_dir: ".".into(),
        bytes: b"init:\n  - alpine\n  - \xc3\x28\n".to_vec(),
    }])
    .unwrap_err();
    let out = err.diagnostics.render_plain(&err.sources);
    assert!(
        out.starts_with("bin.yml:3:5: error: the file is not valid UTF-8"),
        "{out}"
    );
}

#[test]
fn tabs_are_refused_with_a_hint() {
    let out = errors("services:\n\t- name: a\n\t  image: b\n");
    assert!(out.contains("tab"), "{out}");
    assert!(out.contains("use spaces"), "{out}");
}

#[test]
fn many_documents_are_refused() {
    let out = errors("services: []\n---\nservices: []\n");
    assert!(out.contains("one YAML document"), "{out}");
}

#[test]
fn garbage_never_panics() {
    // Byte soup, truncated documents and odd scalars: only errors, no panic.
    let samples = [
        "",
        "\0",
        ":",
        "- - - -",
        "{",
        "[",
        "&a *a",
        "*x",
        "!!binary x",
        "? a\n: b",
        "a: !!int x",
        "a: 99999999999999999999999999999999999999999",
        "a: .nan",
        "a: -.inf",
        "kernel: *k",
        "services: [{name: a, image: b, <<: {}}]",
        "\u{feff}a: b",
        "a: |\n  x\n\tb",
        "services:\n  - name: a\n    image: b\n    sysctl: {? [a]: b}",
    ];
    for s in samples {
        let _ = load_str("garbage.yml", s);
    }
}
