//! The boot timeline: what the guest's init prints on the console, one line
//! per step, and keeps in `/run/slipway/timeline.json`; what `slipway run`
//! and the tests read back.
//!
//! A console line is `slipway: <ms> ms <event> [<name>] [<detail>]`, where
//! `<ms>` is the time since the kernel started (`CLOCK_BOOTTIME`). When an
//! event has a detail but no name, the name is written as `-`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

mod summary;
pub use summary::Summary;

/// Where the guest keeps the timeline as JSON (an array of [`Entry`]).
pub const TIMELINE_JSON: &str = "/run/slipway/timeline.json";
/// The init's control socket (`service list|start|stop|restart`).
pub const CONTROL_SOCKET: &str = "/run/slipway/init.sock";
/// The prefix of every timeline line on the console.
pub const LINE_PREFIX: &str = "slipway: ";

macro_rules! events {
    ($($(#[$doc:meta])* $variant:ident => $text:literal,)*) => {
        /// A timeline event.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Event {
            $($(#[$doc])* $variant,)*
        }

        impl Event {
            /// Every event, in declaration order.
            pub const ALL: &'static [Event] = &[$(Event::$variant,)*];

            /// The event's spelling on the console and in JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Event::$variant => $text,)*
                }
            }
        }

        impl FromStr for Event {
            type Err = TimelineError;

            fn from_str(s: &str) -> Result<Event, TimelineError> {
                match s {
                    $($text => Ok(Event::$variant),)*
                    _ => Err(TimelineError::UnknownEvent(s.to_owned())),
                }
            }
        }
    };
}

events! {
    /// The init started (its first instruction, as close as it can tell).
    InitStart => "init-start",
    /// The root device named by `root=` is there (name: the device node;
    /// detail: its filesystem and how long the init waited for it).
    RootFound => "root-found",
    /// The root device named by `root=` did not appear in time (name: the
    /// `root=` value; detail: how long the init waited, the block devices it
    /// saw). A `fatal` follows and the machine powers off.
    RootMissing => "root-missing",
    /// The init left the initramfs root (detail: how, or the device it
    /// moved to).
    RootDone => "root-done",
    /// The base filesystems are mounted.
    MountsDone => "mounts-done",
    /// Kernel modules are loaded (detail: how many).
    ModulesDone => "modules-done",
    /// Hostname, loopback and rlimits are set (detail: the hostname).
    SystemDone => "system-done",
    /// A script in `/etc/init.d` ran (name: the script; detail: its status).
    InitdScript => "initd",
    /// Volumes are mounted (detail: how many).
    VolumesDone => "volumes-done",
    /// An onboot (or onshutdown) bundle is being started (name: the bundle).
    OnbootStart => "onboot-start",
    /// An onboot bundle finished successfully.
    OnbootExit => "onboot-exit",
    /// An onboot bundle failed (detail: why).
    OnbootFailed => "onboot-failed",
    /// Every onboot bundle has run.
    OnbootDone => "onboot-done",
    /// A service's container was started (name: the service; detail: the pid).
    ServiceStart => "service-start",
    /// A service declared ready (`org.slipway.ready`).
    ServiceReady => "service-ready",
    /// A service's process exited (detail: its status).
    ServiceExit => "service-exit",
    /// A service will be restarted (detail: the back-off delay).
    ServiceRestart => "service-restart",
    /// A service could not be started (detail: why).
    ServiceFailed => "service-failed",
    /// Every service with nothing to wait for has been started.
    ServicesStarted => "services-started",
    /// A daemon (a host process the init supervises: the multiplexer, the
    /// service manager, containerd) was started (name: the daemon; detail:
    /// the pid).
    DaemonStart => "daemon-start",
    /// A daemon's process exited (detail: its status).
    DaemonExit => "daemon-exit",
    /// A daemon will be started again (detail: the back-off delay).
    DaemonRestart => "daemon-restart",
    /// A daemon could not be started (detail: why).
    DaemonFailed => "daemon-failed",
    /// Shutdown began (detail: poweroff, reboot or halt, and why).
    Shutdown => "shutdown",
    /// A script in `/etc/shutdown.d` ran (name: the script; detail: its status).
    ShutdowndScript => "shutdownd",
    /// An onshutdown bundle is being run.
    OnshutdownStart => "onshutdown-start",
    /// The onshutdown bundles have run.
    OnshutdownDone => "onshutdown-done",
    /// The init powers the machine off now.
    Poweroff => "poweroff",
    /// The init reboots the machine now.
    Reboot => "reboot",
    /// The init halts the machine now.
    Halt => "halt",
    /// A fatal error (detail: what failed); the machine powers off next.
    Fatal => "fatal",
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Event, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One step of the timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Milliseconds since the kernel started.
    pub ms: u64,
    /// What happened.
    pub event: Event,
    /// The bundle, service or script it concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Anything else: a status, a count, a reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Why a console line is not a timeline line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimelineError {
    /// The line does not start with `slipway: <ms> ms `.
    #[error("not a timeline line")]
    NotTimeline,
    /// The event name is not one of [`Event::ALL`].
    #[error("unknown timeline event {0:?}")]
    UnknownEvent(String),
}

impl Entry {
    /// An entry with neither name nor detail.
    pub fn new(ms: u64, event: Event) -> Entry {
        Entry {
            ms,
            event,
            name: None,
            detail: None,
        }
    }

    /// The console line, without a trailing newline. Names never contain
    /// whitespace (the builder validates them); any that slips through is
    /// replaced by `_` so that the line still parses.
    pub fn to_line(&self) -> String {
        let mut line = format!("{LINE_PREFIX}{} ms {}", self.ms, self.event);
        let name = self.name.as_deref().map(|n| {
            if n.is_empty() {
                "-".to_owned()
            } else {
                n.replace(char::is_whitespace, "_")
            }
        });
        match (name, &self.detail) {
            (Some(name), Some(detail)) => {
                line.push(' ');
                line.push_str(&name);
                line.push(' ');
                line.push_str(&one_line(detail));
            }
            (Some(name), None) => {
                line.push(' ');
                line.push_str(&name);
            }
            (None, Some(detail)) => {
                line.push_str(" - ");
                line.push_str(&one_line(detail));
            }
            (None, None) => {}
        }
        line
    }

    /// Read a console line back. Leading noise before `slipway: ` (a
    /// carriage return, kernel output interleaved on the same line) is skipped.
    pub fn parse_line(line: &str) -> Result<Entry, TimelineError> {
        let start = line.find(LINE_PREFIX).ok_or(TimelineError::NotTimeline)?;
        let rest = line[start + LINE_PREFIX.len()..].trim_end_matches(['\r', '\n']);
        let (ms, rest) = rest.split_once(" ms ").ok_or(TimelineError::NotTimeline)?;
        let ms: u64 = ms.parse().map_err(|_| TimelineError::NotTimeline)?;
        let mut parts = rest.splitn(3, ' ');
        let event: Event = parts.next().unwrap_or_default().parse()?;
        let name = parts
            .next()
            .filter(|n| *n != "-" && !n.is_empty())
            .map(str::to_owned);
        let detail = parts.next().filter(|d| !d.is_empty()).map(str::to_owned);
        Ok(Entry {
            ms,
            event,
            name,
            detail,
        })
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// Every timeline entry in a console transcript, in order.
pub fn parse_transcript(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|line| Entry::parse_line(line).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ms: u64, event: Event, name: Option<&str>, detail: Option<&str>) -> Entry {
        Entry {
            ms,
            event,
            name: name.map(str::to_owned),
            detail: detail.map(str::to_owned),
        }
    }

    #[test]
    fn lines() {
        let cases = [
            (
                entry(12, Event::InitStart, None, None),
                "slipway: 12 ms init-start",
            ),
            (
                entry(340, Event::OnbootStart, Some("000-hello"), None),
                "slipway: 340 ms onboot-start 000-hello",
            ),
            (
                entry(9, Event::ServiceExit, Some("web"), Some("exit status 1")),
                "slipway: 9 ms service-exit web exit status 1",
            ),
            (
                entry(1, Event::Fatal, None, Some("mount /proc: EPERM\nx")),
                "slipway: 1 ms fatal - mount /proc: EPERM x",
            ),
        ];
        for (entry, line) in cases {
            assert_eq!(entry.to_line(), line);
            assert_eq!(Entry::parse_line(line).unwrap(), {
                let mut e = entry.clone();
                e.detail = e.detail.map(|d| d.replace('\n', " "));
                e
            });
        }
    }

    #[test]
    fn every_event_round_trips() {
        for event in Event::ALL {
            assert_eq!(event.as_str().parse::<Event>().unwrap(), *event);
            let json = serde_json::to_string(&Entry::new(5, *event)).unwrap();
            assert_eq!(serde_json::from_str::<Entry>(&json).unwrap().event, *event);
        }
    }

    #[test]
    fn parse_rejects_and_skips_noise() {
        assert_eq!(
            Entry::parse_line("[    1.0] random kernel line"),
            Err(TimelineError::NotTimeline)
        );
        assert_eq!(
            Entry::parse_line("slipway: x ms init-start"),
            Err(TimelineError::NotTimeline)
        );
        assert_eq!(
            Entry::parse_line("slipway: 3 ms bogus"),
            Err(TimelineError::UnknownEvent("bogus".into()))
        );
        let parsed = Entry::parse_line("\r[  2.1] xslipway: 7 ms poweroff\r\n").unwrap();
        assert_eq!(parsed, Entry::new(7, Event::Poweroff));
        let transcript = "boot\nslipway: 1 ms init-start\nnoise\nslipway: 2 ms poweroff\n";
        assert_eq!(parse_transcript(transcript).len(), 2);
    }

    #[test]
    fn json_omits_absent_fields() {
        let json = serde_json::to_string(&entry(3, Event::ServiceStart, Some("a"), None)).unwrap();
        assert_eq!(json, r#"{"ms":3,"event":"service-start","name":"a"}"#);
    }
}
