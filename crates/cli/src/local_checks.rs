//! What can be checked about a configuration on this machine, before any
//! network: `@pkg:` directories and `files[].source` paths. The config
//! crate does no file I/O, so these checks live here, located with the
//! config's spans like its own diagnostics. A configuration fetched by URL
//! has no directory, so `@pkg:` in one is refused here too.

use slipway_contract::errors::io_reason;
use std::path::Path;

use slipway_config::{Diagnostic, Diagnostics, Loaded};

use crate::config_input::is_url;

/// Problems with the local paths the configuration names, as errors.
pub fn check(loaded: &Loaded, source_dir: &Path) -> Diagnostics {
    let mut out = Diagnostics::new();
    for package in &loaded.packages {
        let dir = &package.value.dir;
        if is_url(loaded.sources.name(package.span.file)) {
            // No directory to build it from: LinuxKit refuses it too.
            out.push(
                Diagnostic::error(
                    "package-in-fetched-config",
                    package.span,
                    "`@pkg:` cannot be used in a configuration fetched by URL",
                )
                .with_help(
                    "download the configuration with its package directories and build it from a file",
                ),
            );
        } else if !dir.is_dir() {
            out.push(
                Diagnostic::error(
                    "package-missing",
                    package.span,
                    format!("package directory {} does not exist", dir.display()),
                )
                .with_help("`@pkg:` paths are relative to the configuration file's directory"),
            );
        } else if !dir.join("build.yml").is_file() {
            out.push(
                Diagnostic::error(
                    "package-without-build-yml",
                    package.span,
                    format!("{} has no build.yml, so it is not a package", dir.display()),
                )
                .with_help("a package directory holds a build.yml (see docs/packages.md)"),
            );
        }
    }
    for file in loaded.config.files() {
        let file = &file.value;
        let Some(source) = &file.source else { continue };
        let optional = file.optional.as_ref().is_some_and(|o| o.value);
        let directory = file.directory.as_ref().is_some_and(|d| d.value);
        if optional || directory {
            // An optional source may be missing (LinuxKit skips it); a
            // directory entry does not read its source.
            continue;
        }
        let path = slipway_assemble::units::source_path(&source.value, source_dir);
        let shown = path.display();
        match std::fs::metadata(&path) {
            Err(err) => out.push(
                Diagnostic::error(
                    "source-unreadable",
                    source.span,
                    format!("cannot read {shown}: {}", io_reason(&err)),
                )
                .with_help(
                    "relative sources are relative to the working directory; \
                     `optional: true` skips a missing one",
                ),
            ),
            Ok(meta) if meta.is_dir() => out.push(
                Diagnostic::error(
                    "source-is-a-directory",
                    source.span,
                    format!("{shown} is a directory"),
                )
                .with_help("a source is one file; for an empty directory write `directory: true`"),
            ),
            Ok(_) => {
                if let Err(err) = std::fs::File::open(&path) {
                    out.push(Diagnostic::error(
                        "source-unreadable",
                        source.span,
                        format!("cannot read {shown}: {}", io_reason(&err)),
                    ));
                }
            }
        }
    }
    out.sorted()
}
