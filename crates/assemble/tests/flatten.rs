//! Flattening with hand-made layers: whiteouts, opaque whiteouts, file <->
//! directory replacement, hard links across layers, hostile entries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use slipway_assemble::{Collect, Filters, Header, Kind, Plan, StoreLayers};
use slipway_oci::Store;
use slipway_reference::{Arch, Platform, Reference};
use slipway_testkit::image::{Artifact, Blob, Entry, ImageBuilder, Layer, media, sha256_digest};

fn flatten(
    layers: Vec<Vec<Entry>>,
    filters: Option<Filters>,
) -> Result<Vec<(Header, Vec<u8>)>, String> {
    let mut b = ImageBuilder::new();
    for l in layers {
        b = b.layer(l);
    }
    flatten_image(b, filters, 1 << 20)
}

/// Write the image into a store, flatten it, and collect the entries,
/// keeping up to `keep` bytes of each file's content.
fn flatten_image(
    builder: ImageBuilder,
    filters: Option<Filters>,
    keep: usize,
) -> Result<Vec<(Header, Vec<u8>)>, String> {
    flatten_capped(
        builder,
        filters,
        keep,
        slipway_assemble::DEFAULT_MAX_LAYER_SIZE,
    )
}

/// As [`flatten_image`], each layer inflating to at most `max` bytes.
fn flatten_capped(
    builder: ImageBuilder,
    filters: Option<Filters>,
    keep: usize,
    max: u64,
) -> Result<Vec<(Header, Vec<u8>)>, String> {
    let dir = tempfile::tempdir().unwrap();
    Artifact::from(builder.build().unwrap())
        .write_oci_layout(dir.path(), Some("docker.io/library/t:1"))
        .unwrap();
    let store = Store::open(dir.path()).unwrap();
    let resolved = store
        .resolve(
            &Reference::parse("t:1").unwrap(),
            &Platform::linux(Arch::Amd64),
        )
        .unwrap();
    let src = StoreLayers {
        store: &store,
        image: "t:1".into(),
        layers: resolved.manifest.layers.clone(),
        max_layer_size: max,
    };
    let plan = Plan::build(&src, filters).map_err(|e| slipway_contract::errors::chain(&e))?;
    let mut sink = Collect::keeping(keep);
    plan.emit(&src, "", "t:1", "init[0]", &mut sink)
        .map_err(|e| slipway_contract::errors::chain(&e))?;
    Ok(sink.entries)
}

fn names(entries: &[(Header, Vec<u8>)]) -> Vec<String> {
    entries.iter().map(|(h, _)| h.path.clone()).collect()
}

fn find<'a>(entries: &'a [(Header, Vec<u8>)], path: &str) -> &'a (Header, Vec<u8>) {
    entries.iter().find(|(h, _)| h.path == path).expect(path)
}

#[test]
fn whiteouts_hide_lower_entries() {
    let out = flatten(
        vec![
            vec![
                Entry::dir("a"),
                Entry::file("a/x", "1"),
                Entry::file("a/y", "2"),
                Entry::file("b", "b"),
            ],
            vec![Entry::whiteout("a/x"), Entry::whiteout("b")],
        ],
        None,
    )
    .unwrap();
    assert_eq!(names(&out), ["a", "a/y"]);
}

#[test]
fn opaque_whiteouts_hide_lower_contents() {
    let out = flatten(
        vec![
            vec![
                Entry::dir("d"),
                Entry::file("d/old", "1"),
                Entry::dir("d/sub"),
                Entry::file("d/sub/f", ""),
            ],
            vec![
                Entry::dir("d"),
                Entry::opaque("d"),
                Entry::file("d/new", "2"),
            ],
        ],
        None,
    )
    .unwrap();
    assert_eq!(names(&out), ["d", "d/new"]);
}

#[test]
fn file_replaced_by_directory_and_back() {
    let out = flatten(
        vec![
            vec![
                Entry::file("p", "file"),
                Entry::dir("q"),
                Entry::file("q/child", "c"),
            ],
            vec![
                Entry::dir("p"),
                Entry::file("p/inside", "i"),
                Entry::file("q", "now a file"),
            ],
        ],
        None,
    )
    .unwrap();
    let mut n = names(&out);
    n.sort();
    assert_eq!(n, ["p", "p/inside", "q"]);
    assert!(find(&out, "p").0.kind.is_dir());
    assert_eq!(find(&out, "q").1, b"now a file");
}

#[test]
fn hard_links_across_layers_form_one_group() {
    let out = flatten(
        vec![
            vec![Entry::file("bin/busybox", "BB")],
            vec![Entry::hard_link("bin/sh", "bin/busybox")],
        ],
        None,
    )
    .unwrap();
    let (leader, content) = find(&out, "bin/busybox");
    assert_eq!(content, b"BB");
    assert_eq!(leader.kind, Kind::File { size: 2 });
    let (link, _) = find(&out, "bin/sh");
    assert_eq!(
        link.kind,
        Kind::Link {
            target: "bin/busybox".into()
        }
    );
    // The link comes after the file it names.
    let pos = |p: &str| out.iter().position(|(h, _)| h.path == p).unwrap();
    assert!(pos("bin/busybox") < pos("bin/sh"));
}

#[test]
fn hidden_link_target_keeps_its_content() {
    let out = flatten(
        vec![
            vec![Entry::file("f", "original"), Entry::hard_link("g", "f")],
            vec![Entry::file("f", "replaced")],
        ],
        None,
    )
    .unwrap();
    assert_eq!(find(&out, "f").1, b"replaced");
    assert_eq!(find(&out, "g").1, b"original");
    assert_eq!(find(&out, "g").0.kind, Kind::File { size: 8 });
}

/// A layer whose entries have raw names the tar crate refuses to write.
fn raw_layer(files: &[(&str, &[u8])]) -> Layer {
    let mut tar = Vec::new();
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        tar.extend_from_slice(h.as_bytes());
        tar.extend_from_slice(data);
        tar.extend(std::iter::repeat_n(0u8, (512 - data.len() % 512) % 512));
    }
    tar.extend_from_slice(&[0u8; 1024]);
    Layer {
        diff_id: sha256_digest(&tar),
        blob: Blob::new(media::OCI_LAYER, tar),
    }
}

fn flatten_layer(layer: Layer) -> Result<Vec<(Header, Vec<u8>)>, String> {
    flatten_image(ImageBuilder::new().prebuilt_layer(layer), None, 16)
}

#[test]
fn dot_dot_paths_stay_inside() {
    let out = flatten_layer(raw_layer(&[
        ("../../etc/passwd", b"x"),
        ("a/../b", b"y"),
        ("/abs", b"z"),
    ]))
    .unwrap();
    let mut n = names(&out);
    n.sort();
    assert_eq!(n, ["abs", "b", "etc/passwd"]);
}

#[test]
fn a_huge_size_claim_is_a_clear_error() {
    // A header claiming 10 GB with 5 bytes behind it: the layer ends first.
    let mut layer = raw_layer(&[("big", b"small")]);
    let mut bytes = layer.blob.bytes().to_vec();
    let mut h = tar::Header::new_ustar();
    h.as_mut_bytes().copy_from_slice(&bytes[..512]);
    h.set_size(10_000_000_000);
    h.set_cksum();
    bytes[..512].copy_from_slice(h.as_bytes());
    layer = Layer {
        diff_id: sha256_digest(&bytes),
        blob: Blob::new(media::OCI_LAYER, bytes),
    };
    let err = flatten_layer(layer).unwrap_err();
    assert!(err.contains("layer sha256:"), "{err}");
}

#[test]
fn nothing_is_written_through_a_symlink() {
    let out = flatten(
        vec![
            vec![
                Entry::dir("usr"),
                Entry::dir("usr/lib"),
                Entry::symlink("lib", "usr/lib"),
                Entry::symlink("evil", "/etc"),
            ],
            vec![
                Entry::file("lib/libc.so", "c"),
                Entry::file("evil/shadow", "s"),
            ],
        ],
        None,
    )
    .unwrap();
    let n = names(&out);
    assert!(n.contains(&"usr/lib/libc.so".to_string()), "{n:?}");
    assert!(n.contains(&"etc/shadow".to_string()), "{n:?}");
    assert!(
        !n.iter()
            .any(|p| p.starts_with("lib/") || p.starts_with("evil/"))
    );
    // The absolute symlink itself is kept as it is: it is resolved inside the container.
    assert_eq!(
        find(&out, "evil").0.kind,
        Kind::Symlink {
            target: "/etc".into()
        }
    );
}

#[test]
fn hard_link_out_of_the_image_is_an_error() {
    let err = flatten(
        vec![vec![Entry::hard_link("x", "../../../etc/shadow")]],
        None,
    )
    .unwrap_err();
    assert!(err.contains("not in the image"), "{err}");
    let err = flatten(
        vec![vec![Entry::dir("d"), Entry::hard_link("x", "d")]],
        None,
    )
    .unwrap_err();
    assert!(err.contains("directory"), "{err}");
}

#[test]
fn devices_and_fifos_pass_through() {
    let out = flatten(
        vec![vec![
            Entry::char_device("dev/null", 1, 3),
            Entry::block_device("dev/sda", 8, 0),
            Entry::fifo("run/p"),
        ]],
        None,
    )
    .unwrap();
    assert_eq!(
        find(&out, "dev/null").0.kind,
        Kind::Char { major: 1, minor: 3 }
    );
    assert_eq!(
        find(&out, "dev/sda").0.kind,
        Kind::Block { major: 8, minor: 0 }
    );
    assert_eq!(find(&out, "run/p").0.kind, Kind::Fifo);
}

#[test]
fn long_names_survive() {
    let long = format!("{}/file", "d".repeat(200));
    let out = flatten(vec![vec![Entry::file(long.clone(), "z")]], None).unwrap();
    assert_eq!(find(&out, &long).1, b"z");
}

#[test]
fn linuxkit_filters_drop_replace_and_touch() {
    let out = flatten(
        vec![vec![
            Entry::dir("etc"),
            Entry::file("etc/hostname", "h"),
            Entry::file("etc/hosts", "mine"),
            Entry::file(".dockerenv", ""),
            Entry::dir("dev"),
        ]],
        Some(Filters {
            resolv_symlink: Some("/run/resolvconf/resolv.conf".into()),
        }),
    )
    .unwrap();
    let n = names(&out);
    assert!(!n.contains(&"etc/hostname".to_string()));
    assert!(!n.contains(&".dockerenv".to_string()));
    assert!(find(&out, "etc/hosts").1.starts_with(b"127.0.0.1"));
    assert_eq!(
        find(&out, "etc/resolv.conf").0.kind,
        Kind::Symlink {
            target: "/run/resolvconf/resolv.conf".into()
        }
    );
    // Touched only when missing: `etc` and `dev` appear once.
    assert_eq!(n.iter().filter(|p| *p == "etc").count(), 1);
    assert_eq!(n.iter().filter(|p| *p == "dev").count(), 1);
    for p in ["dev/pts", "dev/shm", "proc", "sys", "etc/mtab"] {
        assert!(n.contains(&p.to_string()), "{p} missing from {n:?}");
    }
    for (h, _) in &out {
        assert_eq!(h.pax("LINUXKIT.source"), Some(&b"t:1"[..]));
        assert_eq!(h.pax("LINUXKIT.location"), Some(&b"init[0]"[..]));
    }
}

/// The kernel's one-read paths (`build_with_nested`, `stream_parts`) give
/// what the separate reads give: the visible `kernel.tar` (a later layer's
/// replaces an earlier one), parts in the order asked for even when a layer
/// holds them in another order, and a missing part skipped.
#[test]
fn nested_plan_and_parts_in_one_read_match_separate_reads() {
    use slipway_assemble::TarSource;
    use slipway_testkit::image::tar_bytes;

    let old = tar_bytes(&[Entry::file("./old.ko", "old")]).unwrap();
    let new = tar_bytes(&[
        Entry::dir("./lib/modules/6.1.0"),
        Entry::file("./lib/modules/6.1.0/a.ko", "a"),
        Entry::hard_link("./lib/modules/6.1.0/b.ko", "./lib/modules/6.1.0/a.ko"),
        Entry::file("./lib/modules/6.1.0/modules.dep", "a.ko:\n"),
    ])
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let builder = ImageBuilder::new()
        .layer([
            Entry::file("kernel", "bzImage-0"),
            Entry::file("kernel.tar", old),
        ])
        // kernel.tar before kernel: the parts come from two reads.
        .layer([
            Entry::file("kernel.tar", new),
            Entry::file("ucode.cpio", "ucode"),
            Entry::file("kernel", "bzImage-1"),
        ]);
    Artifact::from(builder.build().unwrap())
        .write_oci_layout(dir.path(), Some("docker.io/library/k:1"))
        .unwrap();
    let store = Store::open(dir.path()).unwrap();
    let resolved = store
        .resolve(
            &Reference::parse("k:1").unwrap(),
            &Platform::linux(Arch::Amd64),
        )
        .unwrap();
    let src = StoreLayers {
        store: &store,
        image: "k:1".into(),
        layers: resolved.manifest.layers.clone(),
        max_layer_size: slipway_assemble::DEFAULT_MAX_LAYER_SIZE,
    };

    let (plan, inner) = Plan::build_with_nested(&src, None, "kernel.tar").unwrap();
    let inner = inner.expect("a nested plan for the visible kernel.tar");
    let separate = Plan::build(&src, None).unwrap();
    assert_eq!(
        plan.paths().collect::<Vec<_>>(),
        separate.paths().collect::<Vec<_>>()
    );
    // The separate way: the visible kernel.tar read on its own, planned,
    // then read again to emit.
    let mut kernel_tar = Vec::new();
    separate
        .stream_file(&src, "kernel.tar", &mut |_h, r| {
            r.read_to_end(&mut kernel_tar).unwrap();
            Ok(())
        })
        .unwrap();
    let name = format!(
        "{} kernel.tar",
        src.layer_name(separate.layer_of("kernel.tar").unwrap())
    );
    let expected_inner = Plan::build_verbatim(&slipway_assemble::flatten::OneShot::new(
        "k:1",
        name.clone(),
        &mut &kernel_tar[..],
    ))
    .unwrap();
    assert_eq!(
        inner.paths().collect::<Vec<_>>(),
        expected_inner.paths().collect::<Vec<_>>()
    );
    let mut expected = Collect::keeping(64);
    expected_inner
        .emit(
            &slipway_assemble::flatten::OneShot::new("k:1", name, &mut &kernel_tar[..]),
            "",
            "k:1",
            "kernel",
            &mut expected,
        )
        .unwrap();

    let parts = ["kernel", "absent", "ucode.cpio", "kernel.tar"];
    let mut seen = Vec::new();
    let mut emitted = Collect::keeping(64);
    plan.stream_parts(&src, &parts, &mut |i, h, r| {
        if parts[i] == "kernel.tar" {
            let layer = plan.layer_of("kernel.tar").unwrap();
            let once = slipway_assemble::flatten::OneShot::new(
                "k:1",
                format!("{} kernel.tar", src.layer_name(layer)),
                r,
            );
            inner.emit(&once, "", "k:1", "kernel", &mut emitted)?;
            seen.push((parts[i].to_string(), Vec::new()));
        } else {
            let mut content = Vec::new();
            r.read_to_end(&mut content).unwrap();
            assert_eq!(h.kind.size(), content.len() as u64);
            seen.push((parts[i].to_string(), content));
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(
        seen,
        [
            ("kernel".to_string(), b"bzImage-1".to_vec()),
            ("ucode.cpio".to_string(), b"ucode".to_vec()),
            ("kernel.tar".to_string(), Vec::new()),
        ]
    );
    assert_eq!(emitted.entries, expected.entries);
    let got = names(&emitted.entries);
    assert!(
        got.iter().any(|n| n.ends_with("6.1.0/modules.dep")),
        "{got:?}"
    );
    assert!(!got.iter().any(|n| n.ends_with("old.ko")), "{got:?}");
}

#[test]
fn a_layer_inflating_past_the_limit_is_refused_naming_image_layer_and_limit() {
    let image = ImageBuilder::new().layer([Entry::file("zeros", vec![0u8; 1 << 20])]);
    let digest = image.clone().build().unwrap().layers[0]
        .digest()
        .to_string();
    let err = flatten_capped(image.clone(), None, 0, 256 << 10).unwrap_err();
    assert!(err.contains("t:1"), "{err}");
    assert!(err.contains(&digest), "{err}");
    assert!(err.contains("inflates to more than 262144 bytes"), "{err}");
    // At the limit, it reads.
    let size = slipway_testkit::image::tar_bytes(&[Entry::file("zeros", vec![0u8; 1 << 20])])
        .unwrap()
        .len() as u64;
    assert!(flatten_capped(image, None, 0, size).is_ok());
}

#[test]
fn a_name_that_is_not_utf8_is_refused_naming_the_entry() {
    use slipway_testkit::hostile::{RawEntry, layer};
    let image = ImageBuilder::new()
        .prebuilt_layer(layer(&[RawEntry::file(b"bad-\xff-name".as_slice(), "x")]));
    let err = flatten_image(image, None, 0).unwrap_err();
    assert!(err.contains("entry `bad-\u{fffd}-name`"), "{err}");
}

#[test]
fn a_nul_in_a_pax_name_or_link_target_is_refused_naming_the_entry() {
    use slipway_testkit::hostile::{RawEntry, layer};
    let image = ImageBuilder::new().prebuilt_layer(layer(&[
        RawEntry::symlink("evil", "harmless").pax("linkpath", b"/tmp/a\0\0/b".as_slice())
    ]));
    let err = flatten_image(image, None, 0).unwrap_err();
    assert!(err.contains("entry `evil`"), "{err}");
    assert!(err.contains("NUL"), "{err}");
    let image = ImageBuilder::new().prebuilt_layer(layer(&[
        RawEntry::file("f", "x").pax("path", b"a\0b".as_slice())
    ]));
    let err = flatten_image(image, None, 0).unwrap_err();
    assert!(err.contains("NUL"), "{err}");
}

#[test]
fn a_symlink_with_an_empty_target_is_refused_naming_the_entry() {
    use slipway_testkit::hostile::{RawEntry, layer};
    let image = ImageBuilder::new().prebuilt_layer(layer(&[RawEntry::symlink("empty", "")]));
    let err = flatten_image(image, None, 0).unwrap_err();
    assert!(err.contains("entry `empty`"), "{err}");
    assert!(err.contains("empty target"), "{err}");
}
