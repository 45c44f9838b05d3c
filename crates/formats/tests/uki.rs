//! The UKI writer checked by binutils (objdump reads its sections) and
//! sbsigntool (a UKI signed with a throwaway key verifies).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{kernel_dir, marker_initrd, need, read_at, run, sha256, sha256_file, stub, write_uki};
use slipway_formats::uki::{Uki, UkiError, UkiParts};

#[test]
fn objdump_reads_the_sections_and_a_signed_uki_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let initrd = marker_initrd(dir.path(), "UKI-MARKER");
    let uki = dir.path().join("uki.efi");
    let layout = write_uki(&uki, &initrd, "console=ttyS0 quiet");

    // The kernel and initrd bytes are where the layout says, 4096-aligned.
    let kernel = kernel_dir().join("vmlinuz");
    assert_eq!(layout.linux.start % 4096, 0);
    assert_eq!(layout.initrd.start % 4096, 0);
    let len = |r: &std::ops::Range<u64>| (r.end - r.start) as usize;
    assert_eq!(
        sha256(&read_at(&uki, layout.linux.start, len(&layout.linux))),
        sha256_file(&kernel)
    );
    assert_eq!(
        sha256(&read_at(&uki, layout.initrd.start, len(&layout.initrd))),
        sha256_file(&initrd)
    );

    // objdump: the sections with their sizes, file offsets and addresses.
    let headers = run(Command::new(need("objdump")).arg("-h").arg(&uki));
    let mut found = Vec::new();
    for line in headers.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() == 7 && f[1].starts_with('.') {
            let hex = |s: &str| u64::from_str_radix(s, 16).unwrap();
            found.push((f[1].to_owned(), hex(f[2]), hex(f[3]), hex(f[5])));
        }
    }
    let get = |name: &str| {
        found
            .iter()
            .find(|s| s.0 == name)
            .unwrap_or_else(|| panic!("{name} missing:\n{headers}"))
            .clone()
    };
    let (_, size, _, offset) = get(".linux");
    assert_eq!(
        (offset, size),
        (layout.linux.start, len(&layout.linux) as u64)
    );
    let (_, size, _, offset) = get(".initrd");
    assert_eq!(
        (offset, size),
        (layout.initrd.start, len(&layout.initrd) as u64)
    );
    assert_eq!(get(".cmdline").1, "console=ttyS0 quiet".len() as u64);
    assert!(get(".uname").1 > 0);
    assert!(get(".osrel").1 > 0);
    // Addresses ascend, none overlapping, the initrd's above the kernel's end.
    let mut previous_end = 0;
    for (name, size, vma, _) in &found {
        assert!(*vma >= previous_end, "{name} overlaps:\n{headers}");
        previous_end = vma + size;
    }
    assert!(get(".initrd").2 >= get(".linux").2 + get(".linux").1);
    let private = run(Command::new(need("objdump")).arg("-p").arg(&uki));
    assert!(private.contains("(EFI application)"), "{private}");

    // Signed with a throwaway key, sbverify accepts it with the cert.
    let key = dir.path().join("key.pem");
    let cert = dir.path().join("cert.pem");
    run(Command::new(need("openssl"))
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=slipway test/"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    let signed = dir.path().join("signed.efi");
    let sign = run(Command::new(need("sbsign"))
        .arg("--key")
        .arg(&key)
        .arg("--cert")
        .arg(&cert)
        .arg("--output")
        .arg(&signed)
        .arg(&uki));
    assert!(!sign.contains("warning"), "sbsign warned:\n{sign}");
    let verify = run(Command::new(need("sbverify"))
        .arg("--cert")
        .arg(&cert)
        .arg(&signed));
    assert!(verify.contains("Signature verification OK"), "{verify}");
    // An unsigned UKI does not verify: the check can fail.
    let unsigned = Command::new(need("sbverify"))
        .arg("--cert")
        .arg(&cert)
        .arg(&uki)
        .output()
        .unwrap();
    assert!(!unsigned.status.success());

    // The same inputs give the same bytes.
    let again = dir.path().join("again.efi");
    write_uki(&again, &initrd, "console=ttyS0 quiet");
    assert_eq!(sha256_file(&uki), sha256_file(&again));
}

#[test]
fn a_kernel_without_an_efi_stub_is_refused_before_writing() {
    let parts = UkiParts {
        os_release: b"ID=x\n",
        cmdline: b"",
        uname: None,
        kernel_len: 4096,
        initrd_len: 0,
    };
    let uki = Uki::plan(&stub(), &parts).unwrap();
    // A kernel image as a boot sector, not a PE.
    let mut kernel = vec![0u8; 4096];
    kernel[0x202..0x206].copy_from_slice(b"HdrS");
    let mut out = std::io::Cursor::new(Vec::new());
    let err = uki.write(&mut out, &mut &kernel[..], &mut []).unwrap_err();
    assert!(matches!(err, UkiError::NoEfiStub(_)), "{err}");
    assert!(err.to_string().contains("CONFIG_EFI_STUB"), "{err}");
    assert!(out.into_inner().is_empty(), "bytes were written");
    // A stub that is not a PE is refused too.
    let e = Uki::plan(b"not a PE", &parts).unwrap_err();
    assert!(matches!(e, UkiError::Stub(_)), "{e}");
}
