//! The checks behind every fuzz target, one function per target, each
//! taking arbitrary bytes. They must never panic on any input; where a
//! property holds (a round trip, a clean path), they assert it, so a
//! violation is a crash the fuzzer keeps.
//!
//! `fuzz_targets/*.rs` hand them to libFuzzer (`cargo xtask fuzz`);
//! [`replay`] runs them over the checked-in seeds and crash inputs in
//! `fuzz/seeds/<target>/`, in every test run.

use std::io::{self, BufReader, Read};

use std::path::Path;

use slipway_assemble::entry::{EntrySink, Header, Kind};
use slipway_assemble::{AssembleError, Collect, Filters, Plan, TarSource};

pub mod writers;

/// A target's check.
pub type Check = fn(&[u8]);

/// Every target: its name (the directory of its seeds) and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("config", config),
    ("label", label),
    ("layer", layer),
    ("writers", writers::check),
    ("oci_json", oci_json),
    ("pkg_def", pkg_def),
    ("debian", debian),
    ("cmdline", cmdline),
    ("runtime_json", runtime_json),
    ("modules", modules),
];

/// The whole configuration front end: parse, decode, merge, validate,
/// print. Whatever loads prints to YAML that loads to the same config.
pub fn config(data: &[u8]) {
    use slipway_config::print::{ToOut, to_yaml};
    use slipway_config::{Input, load, load_str};
    let input = Input {
        name: "fuzz.yml".into(),
        base_dir: "/fuzz".into(),
        bytes: data.to_vec(),
    };
    if let Ok(loaded) = load(vec![input]) {
        let printed = to_yaml(&loaded.config.to_out());
        match load_str("printed.yml", &printed) {
            Ok(again) => assert_eq!(again.config, loaded.config, "{printed}"),
            Err(e) => panic!(
                "printed config does not load:\n{printed}\n{}",
                e.diagnostics.render_plain(&e.sources)
            ),
        }
    }
}

/// Image labels (`org.mobyproject.config`) come from images.
pub fn label(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = slipway_config::label::parse_label("fuzz", text);
    }
}

/// Layers held in memory, decompressed as the cache's are.
#[derive(Debug)]
pub struct MemoryLayers(pub Vec<Vec<u8>>);

/// What one fuzzed layer may inflate to: enough for any tar the fuzzer
/// writes, small enough that a bomb cannot stall it.
const LAYER_LIMIT: u64 = 16 << 20;

impl TarSource for MemoryLayers {
    fn image(&self) -> &str {
        "fuzz:1"
    }

    fn layer_count(&self) -> usize {
        self.0.len()
    }

    fn layer_name(&self, index: usize) -> String {
        format!("layer{index}")
    }

    fn with_layer(
        &self,
        index: usize,
        f: &mut dyn FnMut(&mut dyn Read) -> Result<(), AssembleError>,
    ) -> Result<(), AssembleError> {
        let bytes = self.0.get(index).map(Vec::as_slice).unwrap_or_default();
        let io = |source| AssembleError::LayerIo {
            image: "fuzz:1".into(),
            layer: format!("layer{index}"),
            source,
        };
        let reader = slipway_assemble::layer::decompress(bytes).map_err(io)?;
        f(&mut reader.take(LAYER_LIMIT))
    }
}

/// Splits fuzz input into up to four layers at `\n--layer--\n` markers.
pub fn split_layers(data: &[u8]) -> Vec<Vec<u8>> {
    const MARK: &[u8] = b"\n--layer--\n";
    let mut layers = Vec::new();
    let mut rest = data;
    while layers.len() < 3 {
        match rest.windows(MARK.len()).position(|w| w == MARK) {
            Some(i) => {
                layers.push(rest[..i].to_vec());
                rest = &rest[i + MARK.len()..];
            }
            None => break,
        }
    }
    layers.push(rest.to_vec());
    layers
}

/// A sink checking every emitted path: relative, clean, inside the root.
struct CleanPaths(Collect);

fn assert_clean(path: &str) {
    assert!(!path.starts_with('/'), "absolute path {path:?}");
    assert!(
        !path.ends_with('/') || path.is_empty(),
        "trailing slash {path:?}"
    );
    for c in path.split('/') {
        assert!(
            !c.is_empty() && c != "." && c != "..",
            "unclean path {path:?}"
        );
    }
}

impl EntrySink for CleanPaths {
    fn entry(
        &mut self,
        header: &Header,
        links: &[Header],
        content: &mut dyn Read,
    ) -> io::Result<()> {
        assert_clean(&header.path);
        for link in links {
            assert_clean(&link.path);
            if let Kind::Link { target } = &link.kind {
                assert_clean(target);
            }
        }
        self.0.entry(header, links, content)
    }
}

/// The layer tar reader and the flattener on arbitrary layers (plain, or
/// gzip or zstd by their magic): an error or a root of clean paths, each
/// once, never a panic. What flattens is written as tar and cpio and read
/// back by independent readers.
pub fn layer(data: &[u8]) {
    let src = MemoryLayers(split_layers(data));
    for filters in [
        None,
        Some(Filters {
            resolv_symlink: Some("/run/resolvconf/resolv.conf".into()),
        }),
    ] {
        let Ok(plan) = Plan::build(&src, filters) else {
            continue;
        };
        let mut sink = CleanPaths(Collect::keeping(1 << 16));
        if plan.emit(&src, "", "fuzz:1", "init[0]", &mut sink).is_err() {
            continue;
        }
        let entries = sink.0.entries;
        let mut seen = std::collections::BTreeSet::new();
        for (h, _) in &entries {
            assert!(seen.insert(h.path.clone()), "{} emitted twice", h.path);
        }
        writers::round_trip(&entries);
    }
}

/// Manifests and indexes as registries send them: parsed as each media
/// type, and whatever parses serialises and parses again to itself.
pub fn oci_json(data: &[u8]) {
    use slipway_oci::descriptor::ManifestKind;
    for media_type in [
        None,
        Some("application/vnd.oci.image.index.v1+json"),
        Some("application/vnd.oci.image.manifest.v1+json"),
        Some("application/vnd.docker.distribution.manifest.list.v2+json"),
    ] {
        let Ok(kind) = ManifestKind::parse(media_type, data) else {
            continue;
        };
        let (bytes, again) = match &kind {
            ManifestKind::Index(i) => {
                let b = serde_json::to_vec(i).unwrap_or_default();
                let m = Some("application/vnd.oci.image.index.v1+json");
                (b.clone(), ManifestKind::parse(m, &b))
            }
            ManifestKind::Manifest(m) => {
                let b = serde_json::to_vec(m).unwrap_or_default();
                let t = Some("application/vnd.oci.image.manifest.v1+json");
                (b.clone(), ManifestKind::parse(t, &b))
            }
        };
        match again {
            Ok(again) => assert_eq!(again, kind, "{}", String::from_utf8_lossy(&bytes)),
            Err(e) => panic!("{e}: {}", String::from_utf8_lossy(&bytes)),
        }
    }
}

/// A package's `build.yml`.
pub fn pkg_def(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = slipway_pkg::def::parse(Path::new("/fuzz/pkg"), "build.yml", text);
    }
}

/// The Debian repository parsers: a `Release` (hashes, fields, dates),
/// a `Packages` index, `Depends` lines, sources, and version order, which
/// must be a total order.
pub fn debian(data: &[u8]) {
    use slipway_pkg::deb::{repo, resolve, sources, version};
    let text = String::from_utf8_lossy(data);
    let _ = repo::release_hashes(&text);
    let _ = repo::release_field(&text, "Date").map(repo::parse_release_date);
    let _ = repo::release_field(&text, "Valid-Until").map(repo::parse_release_date);
    let mut index = repo::Repository::default();
    let _ = index.add_index(&mut BufReader::new(data), 0, "amd64");
    for p in index.packages.values().flatten() {
        let _ = resolve::parse_depends(&p.depends);
        let _ = resolve::parse_depends(&p.pre_depends);
    }
    let _ = resolve::parse_depends(&text);
    let _ = sources::parse_deb822(&text);
    let _ = sources::parse_one_line(&text);
    let _ = sources::stanzas(&text);
    let words: Vec<&str> = text.split_whitespace().take(3).collect();
    if let [a, b, c] = words[..] {
        use std::cmp::Ordering::*;
        let (ab, ba) = (version::compare(a, b), version::compare(b, a));
        assert_eq!(ab, ba.reverse(), "{a} vs {b}");
        assert_eq!(version::compare(a, a), Equal, "{a}");
        if ab != Greater && version::compare(b, c) != Greater {
            assert_ne!(version::compare(a, c), Greater, "{a} <= {b} <= {c}");
        }
        for op in ["<<", "<=", "=", ">=", ">>"] {
            let _ = version::satisfies(a, op, b);
        }
    }
}

/// The init's kernel command line options.
pub fn cmdline(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = slipway_init::boot::Options::from_cmdline(&text);
}

/// `runtime.json`, as the init reads it: what parses prints and parses
/// again to itself.
pub fn runtime_json(data: &[u8]) {
    use slipway_contract::runtime::Runtime;
    if let Ok(runtime) = Runtime::from_json(data) {
        let printed = runtime.to_json();
        match Runtime::from_json(printed.as_bytes()) {
            Ok(again) => assert_eq!(again, runtime, "{printed}"),
            Err(e) => panic!("{e}: {printed}"),
        }
    }
}

/// `modules.dep`, `modules.alias`, `modules.softdep` and
/// `modules.builtin` (the input's four NUL-separated parts), then the
/// questions the init asks of them.
pub fn modules(data: &[u8]) {
    use slipway_init::modules::Index;
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let mut next = || parts.next().unwrap_or_default();
    let (dep, alias, softdep, builtin) = (next(), next(), next(), next());
    let index = Index::parse(dep, alias, softdep, builtin);
    let aliases: Vec<String> = alias
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(str::to_string)
        .take(16)
        .collect();
    let wanted = index.modules_for(&aliases);
    let order = index.load_order(&wanted, &Default::default());
    let graph = index.load_graph(&order);
    assert_eq!(graph.len(), order.len());
    for (i, deps) in graph.iter().enumerate() {
        for d in deps {
            assert!(*d < i, "module {i} waits for {d}, loaded after it");
        }
    }
    for name in dep.lines().filter_map(|l| l.split(':').next()).take(16) {
        let _ = slipway_init::modules::module_name(name);
        let _ = index.alias_target(name);
        let _ = index.is_builtin(name);
    }
}

/// Runs `target`'s check over every file in `dir` (its seeds and crash
/// inputs); returns how many ran.
pub fn replay(dir: &Path, check: Check) -> io::Result<usize> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    files.sort();
    for file in &files {
        let data = std::fs::read(file)?;
        check(&data);
    }
    Ok(files.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every seed and every crash input ever found, through its check.
    #[test]
    fn seeds_replay_clean() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
        for (name, check) in TARGETS {
            let dir = root.join(name);
            let n = replay(&dir, *check).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            assert!(n > 0, "no seeds for {name}");
        }
    }

    /// The hostile layer corpus through the layer check: the fuzzer's
    /// starting point, and a property check of its own.
    #[test]
    fn the_hostile_corpus_flattens_to_clean_paths() {
        for case in slipway_testkit::hostile::cases() {
            layer(&layer_seed(&case));
        }
    }

    /// A case's layers, inflated, joined by the layer marker.
    fn layer_seed(case: &slipway_testkit::hostile::Case) -> Vec<u8> {
        let mut seed = Vec::new();
        for (i, l) in case.layers.iter().enumerate() {
            if i > 0 {
                seed.extend_from_slice(b"\n--layer--\n");
            }
            let mut tar = Vec::new();
            flate2::read::MultiGzDecoder::new(l.blob.bytes())
                .read_to_end(&mut tar)
                .unwrap_or_else(|e| panic!("{}: {e}", case.name));
            seed.extend_from_slice(&tar);
        }
        seed
    }

    /// Writes the generated seeds (the hostile corpus's layers, the
    /// testkit's manifests and indexes) into `fuzz/seeds/`:
    /// `cargo test -p slipway-fuzz -- --ignored write_generated_seeds`.
    #[test]
    #[ignore = "writes into the source tree"]
    fn write_generated_seeds() {
        use slipway_testkit::image::{Artifact, Entry, ImageBuilder, Index};
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
        let write = |dir: &str, name: &str, bytes: &[u8]| {
            let dir = root.join(dir);
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(dir.join(name), bytes).unwrap_or_else(|e| panic!("{e}"));
        };
        for case in slipway_testkit::hostile::cases() {
            let seed = layer_seed(&case);
            if seed.len() <= 256 << 10 {
                write("layer", &format!("hostile-{}", case.name), &seed);
            }
        }
        let amd = ImageBuilder::new()
            .layer([Entry::dir("etc"), Entry::file("etc/motd", "hi")])
            .cmd(["/bin/sh"])
            .label(
                "org.mobyproject.config",
                r#"{"capabilities":["CAP_NET_ADMIN"]}"#,
            )
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let arm = ImageBuilder::new()
            .arch("arm64")
            .format(slipway_testkit::Format::Docker)
            .layer([Entry::file("a", "b")])
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        write("oci_json", "manifest-oci", amd.manifest.bytes());
        write("oci_json", "manifest-docker", arm.manifest.bytes());
        write("oci_json", "config", amd.config.bytes());
        let index = Index::new([amd, arm]);
        write("oci_json", "index", Artifact::from(index).root().bytes());
    }

    #[test]
    fn layers_split_at_markers() {
        assert_eq!(split_layers(b"a\n--layer--\nb").len(), 2);
        assert_eq!(split_layers(b"a").len(), 1);
    }
}
