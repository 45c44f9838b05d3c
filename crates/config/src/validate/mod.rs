//! Checks on the merged configuration: what LinuxKit checks, and what it should.
//!
//! Every check reports into [`Diagnostics`] and goes on, so one run shows
//! every problem. Checks that need an image's label happen at build time.
//! One module per part of the configuration: [`spec`] (an image entry's
//! process, namespaces, ids, limits), [`mounts`], [`runtime`],
//! [`annotations`], [`files`]; [`limits`] parses `rlimits`.

mod annotations;
mod files;
mod limits;
mod mounts;
mod runtime;
mod spec;

pub use files::{ModeError, parse_mode};
pub use limits::{RLIMITS, Rlimit, RlimitError, parse_rlimit};
pub use spec::check_spec;

use std::collections::{BTreeSet, HashMap};

use crate::diag::{Diagnostic, Diagnostics};
use crate::model::{Config, Image, Section, Volume};
use crate::source::{Sp, Span};

use annotations::{check_after_cycles, check_annotations};
use files::check_file;

/// What the checks of one image entry need to know about the rest of the config.
#[derive(Debug, Default)]
pub struct Context {
    /// Volume name -> read-only?
    pub volumes: HashMap<String, bool>,
    /// Container names that uid/gid names may refer to.
    pub containers: BTreeSet<String>,
    /// Service names that `org.slipway.after` may refer to.
    pub services: BTreeSet<String>,
    /// Whether every entry could be read; names are looked up only then.
    pub complete: bool,
}

impl Context {
    pub fn of(config: &Config) -> Self {
        let mut cx = Context::default();
        for v in config.volumes() {
            if let Some(name) = &v.name {
                let ro = v.readonly.as_ref().is_some_and(|r| r.value);
                cx.volumes.insert(name.value.clone(), ro);
            }
        }
        for (section, _, image) in config.containers() {
            cx.containers.insert(image.name.value.clone());
            if section == Section::Services {
                cx.services.insert(image.name.value.clone());
            }
        }
        cx
    }
}

pub fn validate(config: &Config, complete: bool, diags: &mut Diagnostics) {
    let mut cx = Context::of(config);
    cx.complete = complete;
    check_kernel(config, diags);
    check_names(config, diags);
    check_volumes(config.volumes(), diags);
    for (section, i, image) in config.containers() {
        let path = format!("{}[{i}]", section.key());
        check_image(image, section, &path, &cx, diags);
    }
    check_after_cycles(config, diags);
    let mut seen_paths: HashMap<String, Span> = HashMap::new();
    for (i, file) in config.files().iter().enumerate() {
        check_file(file, &format!("files[{i}]"), &cx, &mut seen_paths, diags);
    }
    if let Some(trust) = &config.trust {
        diags.push(
            Diagnostic::warning(
                "trust-ignored",
                trust.span,
                "`trust` is accepted for compatibility and ignored, as LinuxKit does",
            )
            .with_help("image digests pinned in the references are always verified"),
        );
    }
}

fn check_kernel(config: &Config, diags: &mut Diagnostics) {
    let Some(kernel) = &config.kernel else { return };
    if kernel.image.is_none() {
        diags.push(
            Diagnostic::warning(
                "kernel-without-image",
                kernel.span,
                "`kernel` has no `image`: no kernel is added and its other fields are ignored",
            )
            .with_label("no `image` here"),
        );
    }
    for (key, value) in [
        ("binary", &kernel.binary),
        ("tar", &kernel.tar),
        ("ucode", &kernel.ucode),
    ] {
        if let Some(v) = value
            && (v.value.contains("..") || v.value.starts_with('/') && key == "binary")
        {
            diags.push(Diagnostic::error(
                "kernel-path",
                v.span,
                format!(
                    "kernel.{key}: `{}` must name a file inside the kernel image",
                    v.value
                ),
            ));
        }
    }
}

/// A name that becomes a directory and a container id.
fn check_name(name: &Sp<String>, path: &str, diags: &mut Diagnostics) {
    let n = name.value.as_str();
    let problem =
        if n.is_empty() {
            Some("must not be empty".to_string())
        } else if n == "." || n == ".." {
            Some(format!(
                "`{n}` cannot be used: it names a directory of the bundle tree"
            ))
        } else {
            n
        .chars()
        .find(|c| *c == '/' || c.is_whitespace() || c.is_control()).map(|c| format!(
            "`{n}` must not contain {c:?}: it becomes a directory name and a container id"
        ))
        };
    if let Some(problem) = problem {
        diags.push(Diagnostic::error(
            "name",
            name.span,
            format!("{path}.name {problem}"),
        ));
    }
}

fn check_names(config: &Config, diags: &mut Diagnostics) {
    for section in Section::ALL {
        let mut first: HashMap<&str, Span> = HashMap::new();
        for (i, image) in config.section(section).iter().enumerate() {
            check_name(&image.name, &format!("{}[{i}]", section.key()), diags);
            let name = image.name.value.as_str();
            match first.get(name) {
                None => {
                    first.insert(name, image.name.span);
                }
                Some(&at) if section == Section::Services => diags.push(
                    Diagnostic::error(
                        "duplicate-service",
                        image.name.span,
                        format!("duplicate service name `{name}`: services run side by side and need distinct names"),
                    )
                    .with_related(at, "first used here"),
                ),
                Some(&at) => diags.push(
                    Diagnostic::warning(
                        "duplicate-name",
                        image.name.span,
                        format!(
                            "`{name}` is used twice in {}: allowed (each bundle directory has its index), but logs and user ids become ambiguous",
                            section.key()
                        ),
                    )
                    .with_related(at, "first used here"),
                ),
            }
        }
    }
}

fn check_volumes(volumes: &[Sp<Volume>], diags: &mut Diagnostics) {
    let mut first: HashMap<&str, Span> = HashMap::new();
    for (i, v) in volumes.iter().enumerate() {
        let path = format!("volumes[{i}]");
        let Some(name) = &v.name else {
            diags.push(Diagnostic::error(
                "missing-key",
                v.span,
                format!("{path}: missing required key `name`"),
            ));
            continue;
        };
        let n = name.value.as_str();
        if n.is_empty() {
            diags.push(Diagnostic::error(
                "volume-name",
                name.span,
                format!("{path}.name must not be empty"),
            ));
        } else if !n
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            diags.push(
                Diagnostic::error(
                    "volume-name",
                    name.span,
                    format!("invalid volume name `{n}`"),
                )
                .with_help("volume names use only a-z, 0-9, `_` and `-`"),
            );
        }
        if let Some(&at) = first.get(n) {
            diags.push(
                Diagnostic::error(
                    "duplicate-volume",
                    name.span,
                    format!("duplicate volume name `{n}`"),
                )
                .with_related(at, "first declared here"),
            );
        } else {
            first.insert(n, name.span);
        }
        let format = v.format.as_ref().map(|f| f.value.as_str());
        if let Some(f) = &v.format
            && !matches!(f.value.as_str(), "oci" | "filesystem")
        {
            diags.push(
                Diagnostic::error(
                    "volume-format",
                    f.span,
                    format!("{path}.format: unknown format `{}`", f.value),
                )
                .with_help("expected `filesystem` (the default) or `oci`"),
            );
        }
        if let Some(platforms) = &v.platforms {
            if format != Some("oci") {
                diags.push(Diagnostic::error(
                    "volume-platforms",
                    platforms.span,
                    format!("{path}.platforms applies only to `format: oci` volumes"),
                ));
            }
            for p in &platforms.value {
                if let Err(err) = slipway_reference::Platform::parse(&p.value) {
                    diags.push(Diagnostic::error(
                        "platform",
                        p.span,
                        format!("{path}.platforms: {err}"),
                    ));
                }
            }
        }
        if v.image.is_none() && format == Some("oci") {
            diags.push(Diagnostic::error(
                "volume-format",
                v.format.as_ref().map_or(name.span, |f| f.span),
                format!("{path}: `format: oci` needs an `image` to export"),
            ));
        }
    }
}

fn check_image(image: &Image, section: Section, path: &str, cx: &Context, diags: &mut Diagnostics) {
    check_spec(&image.spec, path, cx, diags);
    if let Some(annotations) = &image.spec.annotations {
        check_annotations(&annotations.value, image, section, path, cx, diags);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rlimits() {
        assert_eq!(
            parse_rlimit("nofile,1024,4096").unwrap(),
            Rlimit {
                kind: "RLIMIT_NOFILE",
                soft: 1024,
                hard: 4096
            }
        );
        assert_eq!(
            parse_rlimit("RLIMIT_NPROC, unlimited ,UNLIMITED")
                .unwrap()
                .soft,
            u64::MAX
        );
        assert!(
            parse_rlimit("nofile,1024")
                .unwrap_err()
                .to_string()
                .contains("name,soft,hard")
        );
        assert!(
            parse_rlimit("nofiles,1,2")
                .unwrap_err()
                .to_string()
                .contains("did you mean `nofile`")
        );
        assert!(
            parse_rlimit("nofile,10,5")
                .unwrap_err()
                .to_string()
                .contains("above the hard limit")
        );
        assert!(
            parse_rlimit("nofile,-1,5")
                .unwrap_err()
                .to_string()
                .contains("not a limit")
        );
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0644"), Ok(0o644));
        assert_eq!(parse_mode("4755"), Ok(0o4755));
        assert!(parse_mode("0999").is_err());
        assert!(parse_mode("rw-r--r--").is_err());
        assert!(parse_mode("077777").is_err());
        assert!(parse_mode("").is_err());
    }
}
