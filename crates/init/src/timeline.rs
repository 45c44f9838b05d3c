//! Records the boot timeline: a console line per event and, once `/run` is
//! mounted, `/run/slipway/timeline.json` rewritten after every event.

use std::path::Path;
use std::sync::Mutex;

use slipway_contract::timeline::{Entry, Event, TIMELINE_JSON};

use crate::sys::Sys;

/// The timeline of this boot.
#[derive(Debug, Default)]
pub struct Timeline {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    entries: Vec<Entry>,
    json: bool,
}

impl Timeline {
    /// Record an event now.
    pub fn event(&self, sys: &dyn Sys, event: Event, name: Option<&str>, detail: Option<&str>) {
        let entry = Entry {
            ms: sys.now_ms(),
            event,
            name: name.map(str::to_owned),
            detail: detail.map(str::to_owned),
        };
        sys.console(&entry.to_line());
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.entries.push(entry);
        if state.json {
            write_json(sys, &state.entries);
        }
    }

    /// Start keeping the JSON file (call once `/run` is mounted).
    pub fn enable_json(&self, sys: &dyn Sys) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.json = true;
        if let Some(parent) = Path::new(TIMELINE_JSON).parent() {
            // Without /run/slipway the console still has the timeline.
            let _ = sys.mkdir_all(parent, 0o755);
        }
        write_json(sys, &state.entries);
    }

    /// The entries so far.
    pub fn entries(&self) -> Vec<Entry> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .clone()
    }
}

fn write_json(sys: &dyn Sys, entries: &[Entry]) {
    if let Ok(mut json) = serde_json::to_vec_pretty(entries) {
        json.push(b'\n');
        // Best effort: the console line is the primary record.
        let _ = sys.write(Path::new(TIMELINE_JSON), &json, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::FakeSys;

    #[test]
    fn console_and_json() {
        let sys = FakeSys::new();
        let timeline = Timeline::default();
        timeline.event(&sys, Event::InitStart, None, None);
        assert_eq!(sys.file(TIMELINE_JSON), None);
        timeline.enable_json(&sys);
        sys.sleep(std::time::Duration::from_millis(25));
        timeline.event(
            &sys,
            Event::OnbootExit,
            Some("000-x"),
            Some("exit status 0"),
        );
        assert_eq!(
            sys.console_lines(),
            [
                "slipway: 1000 ms init-start",
                "slipway: 1025 ms onboot-exit 000-x exit status 0"
            ]
        );
        let json: Vec<Entry> = serde_json::from_str(&sys.file(TIMELINE_JSON).unwrap()).unwrap();
        assert_eq!(json, timeline.entries());
        assert_eq!(json.len(), 2);
    }
}
