//! The kernel unit: `boot/kernel`, `boot/cmdline`, the microcode and
//! `kernel.tar`'s entries; the parts a kernel+initrd output writes on its
//! own; `--decompress-kernel`.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use crate::blobs::BlobSource;
use crate::entry::{EntrySink, Header, Kind};
use crate::error::{AssembleError, Result};
use crate::flatten::Plan;
use crate::layer::{Replayed, Spools, TarSource};

use super::{ImageInput, KernelPart, dir, file};

#[derive(Debug, Clone)]
pub(super) struct KernelUnit {
    pub(super) image: ImageInput,
    pub(super) cmdline: String,
    pub(super) binary: String,
    pub(super) tar: Option<String>,
    pub(super) ucode: Option<String>,
    pub(super) decompress: bool,
    pub(super) plans: SharedPlans,
}

/// The kernel image's plan and `kernel.tar`'s, read once for the unit and
/// its parts: a kernel+initrd build writes both at once, and every read of
/// the layer holding a large `kernel.tar` inflates all of it. The first
/// caller reads; another waits for it instead of reading too. A failed read
/// is not kept (each caller reports its own error).
///
/// The layers' tars are spooled by that first read, so the reads after
/// (the entries, the kernel file) replay them instead of inflating again.
#[derive(Clone, Default)]
pub(super) struct SharedPlans {
    plans: Arc<Mutex<Option<Arc<KernelPlans>>>>,
    spools: Arc<Spools>,
}

/// The image's plan, and `kernel.tar`'s when the unit has one.
type KernelPlans = (Plan, Option<Plan>);

impl std::fmt::Debug for SharedPlans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedPlans")
    }
}

impl SharedPlans {
    fn get(&self, k: &KernelUnit, src: &dyn TarSource) -> Result<Arc<KernelPlans>> {
        let mut slot = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(plans) = slot.as_ref() {
            return Ok(Arc::clone(plans));
        }
        // The outer plan and kernel.tar's plan in one read of the layers.
        let plans = Arc::new(match &k.tar {
            Some(t) => Plan::build_with_nested(src, None, t)?,
            None => (Plan::build(src, None)?, None),
        });
        *slot = Some(Arc::clone(&plans));
        Ok(plans)
    }
}

/// Streams one part of the kernel unit (the kernel, the cmdline, the
/// microcode) to `out`. `Ok(false)` when the unit has no such part.
pub(super) fn write_part(
    k: &KernelUnit,
    store: &dyn BlobSource,
    part: KernelPart,
    out: &mut dyn io::Write,
) -> Result<bool> {
    let name = match part {
        KernelPart::Cmdline => {
            out.write_all(k.cmdline.as_bytes())
                .map_err(AssembleError::Sink)?;
            return Ok(true);
        }
        KernelPart::Kernel => &k.binary,
        KernelPart::Ucode => match &k.ucode {
            Some(u) => u,
            None => return Ok(false),
        },
    };
    let layers = k.image.layers(store);
    let src = Replayed {
        inner: &layers,
        spools: &k.plans.spools,
    };
    let plans = k.plans.get(k, &src)?;
    let plan = &plans.0;
    let mut found = false;
    plan.stream_file(&src, name, &mut |_h, r| {
        found = true;
        if part == KernelPart::Kernel && k.decompress {
            let bytes = decompress_kernel(r, &k.image.name)?;
            out.write_all(&bytes).map_err(AssembleError::Sink)
        } else {
            io::copy(r, out).map(|_| ()).map_err(AssembleError::Sink)
        }
    })?;
    if !found {
        return Err(AssembleError::Image {
            image: k.image.name.clone(),
            message: format!("did not find {name} in the kernel image"),
        });
    }
    Ok(true)
}

/// An in-memory sink adapter: tags and prefixes nothing, forwards to `inner`
/// all but the entries `skip` names.
pub(super) fn write_kernel(
    k: &KernelUnit,
    store: &dyn BlobSource,
    sink: &mut dyn EntrySink,
) -> Result<()> {
    let layers = k.image.layers(store);
    let src = Replayed {
        inner: &layers,
        spools: &k.plans.spools,
    };
    // The plans in one read of the layers (shared with the parts), then the
    // kernel, microcode and kernel.tar's entries in one more: a large
    // kernel.tar is inflated twice in a kernel+initrd build, not four times.
    let plans = k.plans.get(k, &src)?;
    let (plan, inner) = (&plans.0, &plans.1);
    let source = k.image.name.as_str();
    let tag = |h: Header| h.with_origin(source, "kernel");
    let missing = |what: &str| AssembleError::Image {
        image: k.image.name.clone(),
        message: format!("did not find {what} in kernel image"),
    };
    if !plan.contains(&k.binary) {
        return Err(missing("kernel"));
    }
    if k.tar.is_some() && inner.is_none() {
        return Err(missing("kernel tar"));
    }
    if let Some(u) = &k.ucode
        && !plan.contains(u)
    {
        return Err(missing(&format!("microcode {u}")));
    }
    dir("boot", source, "kernel", sink)?;
    file("boot/cmdline", k.cmdline.as_bytes(), source, "kernel", sink)?;
    let mut parts = vec![k.binary.as_str()];
    let ucode = k.ucode.as_deref().map(|u| {
        parts.push(u);
        parts.len() - 1
    });
    let tar = k.tar.as_deref().map(|t| {
        parts.push(t);
        parts.len() - 1
    });
    let streamed = plan.stream_parts(&src, &parts, &mut |i, h, r| {
        if i == 0 {
            if k.decompress {
                let bytes = decompress_kernel(r, &k.image.name)?;
                let header = tag(Header::new(
                    "boot/kernel",
                    Kind::File {
                        size: bytes.len() as u64,
                    },
                    h.mode,
                ));
                sink.entry(&header, &[], &mut &bytes[..])
                    .map_err(AssembleError::Sink)
            } else {
                let header = tag(Header::new("boot/kernel", h.kind.clone(), h.mode));
                sink.entry(&header, &[], r).map_err(AssembleError::Sink)
            }
        } else if Some(i) == ucode {
            let header = tag(Header::new("boot/ucode.cpio", h.kind.clone(), h.mode));
            sink.entry(&header, &[], r).map_err(AssembleError::Sink)
        } else if Some(i) == tar
            && let Some(inner) = &inner
        {
            let layer = plan.layer_of(parts[i]).unwrap_or_default();
            let name = format!("{} {}", TarSource::layer_name(&src, layer), parts[i]);
            let once = crate::flatten::OneShot::new(source, name, r);
            inner.emit(&once, "", source, "kernel", sink)
        } else {
            Ok(())
        }
    });
    // The unit's reads are done, and the kernel file's too in practice (it
    // is read as soon as the plans are, from the layer's first megabytes);
    // a read after this inflates the layer again.
    k.plans.spools.release();
    streamed
}

/// `--decompress-kernel`: a gzip, xz or zstd kernel, or a bzImage whose
/// payload is one (Debian's x86 kernels carry zstd or xz, LinuxKit's gzip).
fn decompress_kernel(r: &mut dyn Read, image: &str) -> Result<Vec<u8>> {
    let fail = |message: String| AssembleError::Image {
        image: image.to_string(),
        message,
    };
    let mut raw = Vec::new();
    r.read_to_end(&mut raw)
        .map_err(|e| fail(format!("reading the kernel: {e}")))?;
    let (payload, bzimage) = kernel_payload(&raw).map_err(|m| fail(m.into()))?;
    let what = if bzimage {
        "the bzImage payload"
    } else {
        "the kernel"
    };
    let mut out = Vec::new();
    // One stream each: a bzImage payload ends with 4 bytes of size after it.
    let format = if payload.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(payload)
            .read_to_end(&mut out)
            .map_err(|e| fail(format!("gunzip of {what}: {e}")))?;
        "gzip"
    } else if payload.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::stream::read::Decoder::with_buffer(payload)
            .map(zstd::stream::read::Decoder::single_frame)
            .and_then(|mut d| d.read_to_end(&mut out))
            .map_err(|e| fail(format!("zstd decompression of {what}: {e}")))?;
        "zstd"
    } else if payload.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        liblzma::read::XzDecoder::new(payload)
            .read_to_end(&mut out)
            .map_err(|e| fail(format!("xz decompression of {what}: {e}")))?;
        "xz"
    } else {
        let known: &[(&[u8], &str)] = &[
            (&[0x5d, 0x00, 0x00], "lzma"),
            (b"BZh", "bzip2"),
            (&[0x89, b'L', b'Z', b'O'], "lzo"),
            (&[0x02, 0x21, 0x4c, 0x18], "lz4"),
            (&[0x04, 0x22, 0x4d, 0x18], "lz4"),
        ];
        let found = known
            .iter()
            .find(|(magic, _)| payload.starts_with(magic))
            .map(|(_, name)| *name);
        return Err(fail(match found {
            Some(name) => format!(
                "{what} is {name}-compressed; --decompress-kernel handles gzip, xz and zstd"
            ),
            None => format!(
                "{what} is not gzip, xz or zstd (first bytes {}); --decompress-kernel handles those, in a bzImage or alone",
                hex::encode(&payload[..payload.len().min(8)])
            ),
        }));
    };
    // x86 appends the decompressed size after the payload: check it.
    if bzimage && let Some(tail) = payload.len().checked_sub(4).and_then(|n| payload.get(n..)) {
        let said = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
        if u64::from(said) != out.len() as u64 {
            return Err(fail(format!(
                "{what} ({format}) decompressed to {} bytes, but the bzImage says {said}",
                out.len()
            )));
        }
    }
    Ok(out)
}

/// The compressed payload of a bzImage (boot protocol 2.08+, which says
/// where it is), else the whole kernel. The flag says which.
fn kernel_payload(raw: &[u8]) -> std::result::Result<(&[u8], bool), &'static str> {
    let is_bzimage = raw.len() > 0x250
        && raw.get(0x1fe..0x200) == Some(&[0x55, 0xaa])
        && raw.get(0x202..0x206) == Some(b"HdrS")
        && raw
            .get(0x206..0x208)
            .is_some_and(|v| u16::from_le_bytes([v[0], v[1]]) >= 0x208);
    if !is_bzimage {
        return Ok((raw, false));
    }
    let le = |o: usize| {
        raw.get(o..o + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let setup = match raw.get(0x1f1).copied().map(usize::from) {
        Some(0) | None => 4,
        Some(n) => n,
    };
    let off = le(0x248).saturating_add((setup + 1) * 512);
    let len = le(0x24c);
    raw.get(off..off.saturating_add(len))
        .filter(|p| !p.is_empty())
        .map(|p| (p, true))
        .ok_or("the bzImage payload lies outside the image")
}
