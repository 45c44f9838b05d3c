//! What a build says about its image: the SBOM (`sbom.spdx.json` in the
//! image unless `--no-sbom`, a copy with `--sbom-file`) and the size report
//! (`--report FILE.html`, `--report FILE.json`, `--report -` as text).

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context as _;
use slipway_assemble::{BlobSource, EntrySink, Header, PAX_SOURCE, Unit};
use slipway_formats::{CpioWriter, Output, OutputFile, TarWriter, UnitReport};
use slipway_report::size::{Collector, OutputSize, SizeReport, UnitKind, UnitSize};
use slipway_report::spdx::{Creation, Document, Package, from_statement, id_part};

use super::BuildArgs;
use super::resolve::ResolvedEntry;

/// LinuxKit's default place for the SBOM in the image.
pub const DEFAULT_SBOM_PATH: &str = "sbom.spdx.json";

/// Refuses what cannot work before anything is built.
pub fn check(args: &BuildArgs) -> anyhow::Result<()> {
    if args.report.as_deref() == Some("-") && args.output.as_deref() == Some("-") {
        anyhow::bail!("--report - and -o - both want standard output; write the report to a file");
    }
    Ok(())
}

/// `--sbom-output` as a path in the image: relative, normalised, inside.
fn sbom_path(args: &BuildArgs) -> anyhow::Result<String> {
    let raw = args.sbom_output.as_deref().unwrap_or(DEFAULT_SBOM_PATH);
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => anyhow::bail!("--sbom-output {raw:?} leaves the image's root"),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        anyhow::bail!("--sbom-output {raw:?} names no file");
    }
    Ok(parts.join("/"))
}

/// The SBOM's creation time: now with `--sbom-current-time`, else
/// `SOURCE_DATE_EPOCH`, else LinuxKit's fixed time.
#[allow(
    clippy::disallowed_methods,
    reason = "--sbom-current-time asks for the wall clock"
)]
fn created(args: &BuildArgs, source_date_epoch: Option<u64>) -> u64 {
    if args.sbom_current_time {
        return std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
    }
    source_date_epoch.unwrap_or(slipway_report::time::LINUXKIT_TIME)
}

/// The build's SBOM: one package per image (its reference and digest),
/// with the SBOM attached to each image (as a package build or BuildKit
/// stores it) merged below it.
pub fn sbom_document(
    args: &BuildArgs,
    name: &str,
    entries: &[ResolvedEntry],
    store: &slipway_oci::Store,
    arch: &str,
    source_date_epoch: Option<u64>,
) -> anyhow::Result<Vec<u8>> {
    let mut doc = Document::new(name, Creation::at(created(args, source_date_epoch)));
    let mut seen: Vec<(String, String)> = Vec::new();
    for e in entries {
        let digest = e.image.digest().to_string();
        let key = (e.reference.clone(), digest.clone());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let k = seen.len() - 1;
        let repository = e
            .reference
            .split('@')
            .next()
            .unwrap_or(&e.reference)
            .rsplit_once(':')
            .filter(|(_, tag)| !tag.contains('/'))
            .map_or(e.reference.as_str(), |(repo, _)| repo);
        let last = repository.rsplit('/').next().unwrap_or(repository);
        let image = Package {
            id: format!("Image-{k}-{}", id_part(last)),
            name: e.reference.clone(),
            version: Some(digest.clone()),
            sha256: Some(e.image.digest().hex().to_owned()),
            licence_declared: "NOASSERTION".into(),
            purl: Some(format!(
                "pkg:oci/{last}@{}?arch={arch}&repository_url={repository}",
                digest.replace(':', "%3A")
            )),
            purpose: Some("CONTAINER"),
            ..Package::default()
        };
        let id = doc.add(&image);
        doc.describes(&id);
        let attached = store
            .attached_sbom(&e.image)
            .with_context(|| format!("reading the SBOM attached to {}", e.reference))?;
        if let Some(bytes) = attached {
            let sbom = from_statement(&bytes)
                .with_context(|| format!("the SBOM attached to {}", e.reference))?;
            doc.merge(&sbom, &format!("I{k}"), &id)
                .with_context(|| format!("merging the SBOM attached to {}", e.reference))?;
        }
    }
    doc.to_json().context("writing the SBOM")
}

/// Adds the SBOM unit (unless `--no-sbom`); returns the SBOM.
pub fn add_sbom(
    args: &BuildArgs,
    name: &str,
    entries: &[ResolvedEntry],
    store: &slipway_oci::Store,
    arch: &str,
    source_date_epoch: Option<u64>,
    units: &mut Vec<Unit>,
) -> anyhow::Result<Option<Vec<u8>>> {
    check(args)?;
    if args.no_sbom {
        return Ok(None);
    }
    let path = sbom_path(args)?;
    let bytes = sbom_document(args, name, entries, store, arch, source_date_epoch)?;
    units.push(Unit::generated_file(
        "sbom",
        &format!("SBOM {path}"),
        &path,
        bytes.clone(),
        source_date_epoch,
    ));
    Ok(Some(bytes))
}

/// Counts the bytes written to it.
#[derive(Debug, Default)]
struct Counter(u64);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Records a unit's files while its archive bytes are counted.
struct Measure<'a, W: EntrySink> {
    writer: W,
    collector: &'a mut Collector,
    unit: &'a str,
    skip_boot: bool,
    files: u64,
    bytes: u64,
    image: Option<String>,
}

fn source(h: &Header) -> Option<String> {
    h.pax(PAX_SOURCE)
        .map(|s| String::from_utf8_lossy(s).into_owned())
}

impl<W: EntrySink> EntrySink for Measure<'_, W> {
    fn entry(
        &mut self,
        header: &Header,
        links: &[Header],
        content: &mut dyn Read,
    ) -> std::io::Result<()> {
        let in_output = !(self.skip_boot && header.path.starts_with("boot/"));
        if in_output && let slipway_assemble::Kind::File { size } = header.kind {
            let image = source(header);
            if self.image.is_none() {
                self.image.clone_from(&image);
            }
            self.files += 1;
            self.bytes += size;
            self.collector
                .file(self.unit, image.as_deref(), &header.path, size);
        }
        self.writer.entry(header, links, content)
    }
}

fn measure(
    unit: &Unit,
    blobs: &dyn BlobSource,
    initrd: bool,
    collector: &mut Collector,
) -> anyhow::Result<(u64, u64, u64, Option<String>)> {
    let location = unit.location.clone();
    let (files, bytes, archive, image) = if initrd {
        let mut m = Measure {
            writer: CpioWriter::new(Counter::default(), true),
            collector,
            unit: &location,
            skip_boot: true,
            files: 0,
            bytes: 0,
            image: None,
        };
        unit.write(blobs, &mut m)?;
        let counted = m.writer.finish().context("counting")?;
        (m.files, m.bytes, counted.0, m.image)
    } else {
        let mut m = Measure {
            writer: TarWriter::new(Counter::default()),
            collector,
            unit: &location,
            skip_boot: false,
            files: 0,
            bytes: 0,
            image: None,
        };
        unit.write(blobs, &mut m)?;
        (m.files, m.bytes, m.writer.into_inner().0, m.image)
    };
    Ok((files, bytes, archive, image))
}

/// What the size report needs from the build.
pub struct Built<'a> {
    pub name: &'a str,
    pub outputs: &'a [Output],
    pub compression: &'a str,
    pub units: &'a [&'a Unit],
    pub blobs: &'a dyn BlobSource,
    pub reports: &'a [UnitReport],
    pub files: &'a [OutputFile],
    /// The kernel has `ucode:`, the initrd's first archive.
    pub ucode: bool,
}

/// The size report of a build: every unit read again (in parallel) for its
/// files, with the bytes it takes in the outputs.
pub fn size_report(b: &Built<'_>) -> anyhow::Result<SizeReport> {
    let initrd = b.outputs.iter().any(|o| o.needs_kernel());
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(b.units.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    type Measured = (usize, (u64, u64, u64, Option<String>));
    let results: Vec<anyhow::Result<(Collector, Vec<Measured>)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut collector = Collector::default();
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let Some(unit) = b.units.get(i) else { break };
                        let m = measure(unit, b.blobs, initrd, &mut collector)
                            .with_context(|| format!("measuring {}", unit.title))?;
                        done.push((i, m));
                    }
                    Ok((collector, done))
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a measuring thread panicked")))
            })
            .collect()
    });
    let mut collector = Collector::default();
    let mut measured: Vec<Measured> = Vec::new();
    for r in results {
        let (c, done) = r?;
        collector.merge(c);
        measured.extend(done);
    }
    measured.sort_by_key(|(i, _)| *i);
    let file_name = |f: &OutputFile| {
        f.path.file_name().map_or_else(
            || f.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    };
    let mut units = Vec::new();
    let kernel_file = b.files.iter().find(|f| file_name(f).ends_with("-kernel"));
    if let Some(k) = kernel_file {
        units.push(UnitSize {
            location: "kernel".into(),
            title: "kernel binary".into(),
            kind: UnitKind::Kernel,
            image: None,
            files: 1,
            bytes: k.bytes,
            uncompressed: k.bytes,
            stored: k.bytes,
            in_initrd: false,
        });
    }
    for (i, (files, bytes, uncompressed, image)) in measured {
        let unit = b.units[i];
        let stored = b
            .reports
            .get(i)
            .filter(|r| r.title == unit.title)
            .map_or(0, |r| r.bytes);
        units.push(UnitSize {
            location: unit.location.clone(),
            title: unit.title.clone(),
            kind: UnitKind::of_location(&unit.location),
            image,
            files,
            bytes,
            uncompressed,
            stored,
            in_initrd: initrd,
        });
    }
    let initrd_file = b
        .files
        .iter()
        .find(|f| file_name(f).ends_with("-initrd.img"));
    if b.ucode
        && let Some(f) = initrd_file
    {
        // The microcode archive leads the initrd; it is what the units are not.
        let units_sum: u64 = units.iter().filter(|u| u.in_initrd).map(|u| u.stored).sum();
        let ucode = f.bytes.saturating_sub(units_sum);
        units.insert(
            usize::from(kernel_file.is_some()),
            UnitSize {
                location: "kernel".into(),
                title: "microcode (ucode.cpio)".into(),
                kind: UnitKind::Ucode,
                image: None,
                files: 1,
                bytes: ucode,
                uncompressed: ucode,
                stored: ucode,
                in_initrd: true,
            },
        );
    }
    let outputs = b
        .files
        .iter()
        .map(|f| OutputSize {
            name: file_name(f),
            bytes: f.bytes,
        })
        .collect();
    let formats: Vec<&str> = b.outputs.iter().map(|o| o.name()).collect();
    Ok(collector.finish(
        b.name,
        &formats.join(", "),
        initrd.then_some(b.compression),
        units,
        outputs,
    ))
}

/// After the outputs: `--sbom-file` and `--report`.
pub fn finish(args: &BuildArgs, sbom: Option<&[u8]>, built: &Built<'_>) -> anyhow::Result<()> {
    if let (Some(path), Some(bytes)) = (&args.sbom_file, sbom) {
        crate::output::write_file(path, bytes)?;
    }
    let Some(target) = args.report.as_deref() else {
        return Ok(());
    };
    let report = size_report(built)?;
    if target == "-" {
        crate::output::write_str(&slipway_report::size::text(&report))?;
        return Ok(());
    }
    let path = PathBuf::from(target);
    let bytes = if path.extension().is_some_and(|e| e == "json") {
        report.to_json().context("writing the report as JSON")?
    } else {
        slipway_report::html::render(&report).context("writing the report")?
    };
    crate::output::write_file(&path, bytes.as_bytes())
}
