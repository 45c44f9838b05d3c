//! Merging several configuration files, in order, as `linuxkit build a.yml b.yml` does.
//!
//! Kernel fields are replaced by a later file's when it gives a non-empty value
//! (`tar` and `ucode` whenever it gives one); every list is appended. A key is
//! present in the result when any file wrote it.

use crate::model::{Config, Kernel, Trust};
use crate::source::Sp;

pub fn merge(configs: Vec<Config>) -> Config {
    let mut out = Config::default();
    for c in configs {
        if let Some(k) = c.kernel {
            let span = k.span;
            let merged = out
                .kernel
                .get_or_insert_with(|| Sp::new(Kernel::default(), span));
            merge_kernel(&mut merged.value, k.value);
        }
        append(&mut out.init, c.init);
        append(&mut out.onboot, c.onboot);
        append(&mut out.onshutdown, c.onshutdown);
        append(&mut out.services, c.services);
        append(&mut out.files, c.files);
        append(&mut out.volumes, c.volumes);
        if let Some(t) = c.trust {
            let span = t.span;
            let merged = out
                .trust
                .get_or_insert_with(|| Sp::new(Trust::default(), span));
            append(&mut merged.value.image, t.value.image);
            append(&mut merged.value.org, t.value.org);
        }
    }
    out
}

fn merge_kernel(into: &mut Kernel, from: Kernel) {
    fn non_empty(v: &Option<Sp<String>>) -> bool {
        v.as_ref().is_some_and(|s| !s.value.is_empty())
    }
    if from.image.is_some() {
        into.image = from.image;
    }
    if non_empty(&from.cmdline) || into.cmdline.is_none() {
        into.cmdline = from.cmdline.or(into.cmdline.take());
    }
    if non_empty(&from.binary) || into.binary.is_none() {
        into.binary = from.binary.or(into.binary.take());
    }
    if from.tar.is_some() {
        into.tar = from.tar;
    }
    if from.ucode.is_some() {
        into.ucode = from.ucode;
    }
}

fn append<T>(into: &mut Option<Sp<Vec<T>>>, from: Option<Sp<Vec<T>>>) {
    let Some(from) = from else { return };
    match into {
        Some(list) => list.value.extend(from.value),
        None => *into = Some(from),
    }
}

#[cfg(test)]
mod tests {

    use crate::load::{Input, load};

    fn input(name: &str, text: &str) -> Input {
        Input {
            name: name.into(),
            base_dir: ".".into(),
            bytes: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn later_kernel_fields_win_when_not_empty_and_lists_append() {
        let a = "kernel:\n  image: linuxkit/kernel:6.6\n  cmdline: console=tty0\n  tar: kernel.tar\ninit: [linuxkit/init:a]\nservices:\n  - name: one\n    image: alpine\n";
        let b = "kernel:\n  image: linuxkit/kernel:6.12\n  cmdline: \"\"\n  tar: none\ninit: [linuxkit/runc:b]\nservices:\n  - name: two\n    image: alpine\n";
        let loaded = load(vec![input("a.yml", a), input("b.yml", b)]).unwrap();
        let c = loaded.config;
        let k = c.kernel.unwrap().value;
        assert_eq!(
            k.image.unwrap().to_string(),
            "docker.io/linuxkit/kernel:6.12"
        );
        assert_eq!(k.cmdline.unwrap().value, "console=tty0");
        assert_eq!(k.tar.unwrap().value, "none");
        assert_eq!(c.init.unwrap().value.len(), 2);
        let names: Vec<_> = c
            .services
            .unwrap()
            .value
            .iter()
            .map(|s| s.name.value.clone())
            .collect();
        assert_eq!(names, ["one", "two"]);
    }

    #[test]
    fn duplicate_services_across_files_are_an_error() {
        let a = "services:\n  - name: web\n    image: nginx\n";
        let err = load(vec![input("a.yml", a), input("b.yml", a)]).unwrap_err();
        let text = err.diagnostics.render_plain(&err.sources);
        assert!(text.contains("b.yml:2:"), "{text}");
        assert!(text.contains("duplicate service name `web`"), "{text}");
    }

    #[test]
    fn a_volume_declared_in_one_file_can_be_bound_in_another() {
        let a = "volumes:\n  - name: data\n";
        let b = "services:\n  - name: web\n    image: nginx\n    binds: [\"data:/data\"]\n";
        load(vec![input("a.yml", a), input("b.yml", b)]).unwrap();
    }
}
