//! The missing-library check: every dynamically linked ELF file in the
//! image must find its `PT_INTERP` loader and each `DT_NEEDED` library in
//! the image, along its `RUNPATH`/`RPATH` or the standard directories.
//!
//! Files are read through `object`'s `ReadCache`, which reads only the
//! headers and tables it is asked for, never the whole binary.

use std::io::{Read, Seek};

use object::elf::{DT_NEEDED, DT_RPATH, DT_RUNPATH, FileHeader32, FileHeader64, PT_INTERP};
use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use object::{Endianness, ReadCache, ReadRef};
use slipway_reference::Arch;

use crate::error::PkgError;
use crate::tree::{Content, Kind, Tree};

/// What an ELF file needs at run time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    pub interpreter: Option<String>,
    pub needed: Vec<String>,
    pub runpath: Vec<String>,
}

fn parse_elf<'data, Elf: FileHeader<Endian = Endianness>, R: ReadRef<'data>>(
    data: R,
) -> Option<Needs> {
    let header = Elf::parse(data).ok()?;
    let endian = header.endian().ok()?;
    let mut needs = Needs::default();
    for ph in header.program_headers(endian, data).ok()? {
        if ph.p_type(endian) == PT_INTERP
            && let Ok(Some(interp)) = ph.interpreter(endian, data)
        {
            needs.interpreter = Some(String::from_utf8_lossy(interp).to_string());
        }
    }
    let sections = header.sections(endian, data).ok()?;
    if let Ok(Some((dyns, link))) = sections.dynamic(endian, data)
        && let Ok(strings) = sections.strings(endian, data, link)
    {
        for d in dyns {
            let tag = d.tag(endian);
            if tag == DT_NEEDED || tag == DT_RUNPATH || tag == DT_RPATH {
                let Ok(s) = d.string(endian, strings) else {
                    continue;
                };
                let s = String::from_utf8_lossy(s).to_string();
                if tag == DT_NEEDED {
                    needs.needed.push(s);
                } else {
                    needs.runpath.extend(s.split(':').map(str::to_string));
                }
            }
        }
    }
    Some(needs)
}

/// The needs of the ELF file in `reader`; `None` if it is not an ELF file.
pub fn needs<T: Read + Seek>(reader: T) -> Option<Needs> {
    let cache = ReadCache::new(reader);
    let data = &cache;
    let ident = data.read_bytes_at(0, 5).ok()?;
    if &ident[..4] != b"\x7fELF" {
        return None;
    }
    match ident[4] {
        1 => parse_elf::<FileHeader32<Endianness>, _>(data),
        2 => parse_elf::<FileHeader64<Endianness>, _>(data),
        _ => None,
    }
}

/// The standard library directories for `arch` (Debian multiarch first).
fn search_dirs(arch: Arch) -> Vec<String> {
    let triplet = match arch {
        Arch::Amd64 => "x86_64-linux-gnu",
        Arch::Arm64 => "aarch64-linux-gnu",
        Arch::Riscv64 => "riscv64-linux-gnu",
        Arch::S390x => "s390x-linux-gnu",
    };
    [
        format!("lib/{triplet}"),
        format!("usr/lib/{triplet}"),
        "lib".into(),
        "usr/lib".into(),
        "lib64".into(),
        "usr/lib64".into(),
        "usr/local/lib".into(),
    ]
    .into()
}

/// Checks every ELF file; returns `binary: needs library` lines for what is missing.
pub fn missing_libraries(tree: &Tree, arch: Arch) -> Result<Vec<String>, PkgError> {
    let dirs = search_dirs(arch);
    let mut missing = Vec::new();
    for (path, entry) in tree.entries() {
        let Kind::File(content) = &entry.kind else {
            continue;
        };
        if content.size() < 64 {
            continue;
        }
        let found = match content {
            Content::Bytes(b) => needs(std::io::Cursor::new(b.as_slice())),
            Content::Path { path: p, .. } => {
                let file = std::fs::File::open(p).map_err(PkgError::io("opening", p))?;
                needs(file)
            }
        };
        let Some(needs) = found else {
            continue;
        };
        if let Some(interp) = &needs.interpreter
            && tree.resolve(interp).is_none()
        {
            missing.push(format!(
                "/{path}: needs its loader {interp}, which is not in the image"
            ));
        }
        let origin = path.rsplit_once('/').map_or("", |(d, _)| d);
        for lib in &needs.needed {
            let candidates: Vec<String> = if lib.contains('/') {
                vec![lib.clone()]
            } else {
                needs
                    .runpath
                    .iter()
                    .map(|r| {
                        r.replace("$ORIGIN", &format!("/{origin}"))
                            .replace("${ORIGIN}", &format!("/{origin}"))
                    })
                    .chain(dirs.iter().cloned())
                    .map(|d| format!("{}/{lib}", d.trim_end_matches('/')))
                    .collect()
            };
            let present = candidates.iter().any(
                |c| matches!(tree.resolve(c), Some((_, e)) if matches!(e.kind, Kind::File(_))),
            );
            if !present {
                missing.push(format!("/{path}: needs {lib}, which is not in the image"));
            }
        }
    }
    Ok(missing)
}
