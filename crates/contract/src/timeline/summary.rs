//! The boot's numbers, read off a timeline: what `slipway run` prints after
//! a boot and what the measurements in `docs/guest.md` report.

use std::fmt;

use super::{Entry, Event};

/// Where a boot spent its time, in milliseconds, from the timeline's own
/// stamps (the guest's `CLOCK_BOOTTIME`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Kernel start to the init's first stamp (`init-start`).
    pub kernel_to_init: u64,
    /// `init-start` to `onboot-done`.
    pub init_to_onboot_done: u64,
    /// How many onboot bundles ran.
    pub onboot_count: usize,
    /// The onboot bundles' own time: each `onboot-start` to its
    /// `onboot-exit` (or `onboot-failed`): the runtime's create, start and
    /// delete and the container's work.
    pub onboot_containers: u64,
    /// The kernel's `finit_module` work before onboot (`modules-done`'s
    /// "loading N ms": the boot stage's, and a root device's).
    pub module_loading: u64,
    /// The init's own steps up to `onboot-done`: [`Self::init_to_onboot_done`]
    /// without the onboot containers and the module loading (leaving the
    /// root, mounts, module index, system setup, volumes and the gaps between
    /// bundles).
    pub init_overhead: u64,
    /// `onboot-done` to `services-started`, when the boot got that far.
    pub onboot_done_to_services_started: Option<u64>,
    /// `onboot-done` to the last service's first `service-start` (before
    /// `services-started`).
    pub last_service_after_onboot: Option<u64>,
}

fn first(entries: &[Entry], event: Event) -> Option<&Entry> {
    entries.iter().find(|e| e.event == event)
}

/// "loading N ms" in a `modules-done` detail.
fn loading_ms(detail: &str) -> Option<u64> {
    let rest = &detail[detail.find("loading ")? + "loading ".len()..];
    rest.split(' ').next()?.parse().ok()
}

impl Summary {
    /// The summary of a boot's timeline, or `None` when it never reached
    /// `onboot-done`.
    pub fn of(entries: &[Entry]) -> Option<Summary> {
        let init = first(entries, Event::InitStart)?;
        let onboot_done = first(entries, Event::OnbootDone)?;
        let before_done: Vec<&Entry> = entries.iter().filter(|e| e.ms <= onboot_done.ms).collect();
        let mut onboot_containers = 0;
        let mut onboot_count = 0;
        for (i, start) in before_done.iter().enumerate() {
            if start.event != Event::OnbootStart {
                continue;
            }
            onboot_count += 1;
            let end = before_done[i..].iter().find(|e| {
                matches!(e.event, Event::OnbootExit | Event::OnbootFailed) && e.name == start.name
            });
            if let Some(end) = end {
                onboot_containers += end.ms.saturating_sub(start.ms);
            }
        }
        // The boot stage's modules-done has no name, a root device's are
        // `root` and `rootfs`; the later ones (`later`) load beside the
        // containers.
        let module_loading = entries
            .iter()
            .filter(|e| {
                e.event == Event::ModulesDone
                    && matches!(e.name.as_deref(), None | Some("root" | "rootfs"))
            })
            .filter_map(|e| e.detail.as_deref().and_then(loading_ms))
            .sum();
        let init_to_onboot_done = onboot_done.ms.saturating_sub(init.ms);
        let started = first(entries, Event::ServicesStarted);
        let last_service = started.and_then(|s| {
            entries
                .iter()
                .filter(|e| e.event == Event::ServiceStart && e.ms <= s.ms)
                .map(|e| e.ms)
                .max()
        });
        Some(Summary {
            kernel_to_init: init.ms,
            init_to_onboot_done,
            onboot_count,
            onboot_containers,
            module_loading,
            init_overhead: init_to_onboot_done
                .saturating_sub(onboot_containers)
                .saturating_sub(module_loading),
            onboot_done_to_services_started: started.map(|s| s.ms.saturating_sub(onboot_done.ms)),
            last_service_after_onboot: last_service.map(|ms| ms.saturating_sub(onboot_done.ms)),
        })
    }
}

impl fmt::Display for Summary {
    /// A few lines for people, without a trailing newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "kernel start -> init          {:>6} ms",
            self.kernel_to_init
        )?;
        writeln!(
            f,
            "init -> onboot done           {:>6} ms ({} onboot containers {} ms, module loading {} ms)",
            self.init_to_onboot_done,
            self.onboot_count,
            self.onboot_containers,
            self.module_loading
        )?;
        match (
            self.onboot_done_to_services_started,
            self.last_service_after_onboot,
        ) {
            (Some(all), Some(last)) => writeln!(
                f,
                "onboot done -> services started {:>4} ms (last service started {last} ms after onboot)",
                all
            )?,
            (Some(all), None) => writeln!(f, "onboot done -> services started {all:>4} ms")?,
            _ => writeln!(f, "services: not started")?,
        }
        write!(
            f,
            "init's own overhead           {:>6} ms (init -> onboot done without the containers and module loading)",
            self.init_overhead
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_transcript;
    use super::*;

    const BOOT: &str = "\
[    0.000000] Linux version 6.12
slipway: 2900 ms init-start - 0.1.0
slipway: 2925 ms root-done - bind
slipway: 2940 ms mounts-done
slipway: 3240 ms modules-done - 6 loaded, 0 failed, 1 threads; index and devices 30 ms, loading 250 ms
slipway: 3260 ms system-done - linuxkit-5254
slipway: 3262 ms volumes-done - 0
slipway: 3263 ms onboot-start 000-dhcpcd
slipway: 3700 ms onboot-exit 000-dhcpcd exit status 0
slipway: 3705 ms onboot-start 001-hello
slipway: 3800 ms onboot-failed 001-hello exit status 1
slipway: 3802 ms onboot-done - 2
slipway: 3900 ms service-start getty pid 90
slipway: 3950 ms service-start www pid 95
slipway: 3951 ms services-started - 2
slipway: 4100 ms modules-done later 2 loaded, 0 failed, 1 threads; index and devices 3 ms, loading 90 ms
slipway: 9000 ms service-start www pid 140
";

    #[test]
    fn numbers_of_a_boot() {
        let s = Summary::of(&parse_transcript(BOOT)).unwrap();
        assert_eq!(
            s,
            Summary {
                kernel_to_init: 2900,
                init_to_onboot_done: 902,
                onboot_count: 2,
                onboot_containers: 437 + 95,
                module_loading: 250,
                init_overhead: 902 - 532 - 250,
                onboot_done_to_services_started: Some(149),
                // A restart after services-started does not count.
                last_service_after_onboot: Some(148),
            }
        );
        let text = s.to_string();
        assert!(
            text.contains("kernel start -> init            2900 ms"),
            "{text}"
        );
        assert!(
            text.contains("init's own overhead              120 ms"),
            "{text}"
        );
    }

    #[test]
    fn a_root_device_s_modules_count_as_module_loading() {
        let boot = BOOT.replace(
            "slipway: 2925 ms root-done - bind\n",
            "slipway: 2915 ms modules-done root 5 loaded, 0 failed, 1 threads; index and devices 2 ms, loading 40 ms\n\
             slipway: 2920 ms root-found /dev/vda erofs after 1 ms\n\
             slipway: 2922 ms modules-done rootfs 2 loaded, 0 failed, 1 threads; index and devices 0 ms, loading 1 ms\n\
             slipway: 2925 ms root-done - moved to /dev/vda (erofs, read-only)\n",
        );
        let s = Summary::of(&parse_transcript(&boot)).unwrap();
        assert_eq!(s.module_loading, 250 + 40 + 1);
        assert_eq!(s.init_overhead, 902 - 532 - 291);
    }

    #[test]
    fn a_boot_that_stopped_early() {
        let head: String = BOOT.lines().take(6).map(|l| format!("{l}\n")).collect();
        assert_eq!(Summary::of(&parse_transcript(&head)), None);
        let no_services: String = BOOT.lines().take(12).map(|l| format!("{l}\n")).collect();
        let s = Summary::of(&parse_transcript(&no_services)).unwrap();
        assert_eq!(s.onboot_done_to_services_started, None);
        assert!(s.to_string().contains("services: not started"));
    }
}
