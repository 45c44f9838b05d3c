//! Download progress on standard error: a bar per image (bytes, rate) on
//! a terminal, else a line when an image starts and ends. Sizes are IEC
//! (KiB, MiB) everywhere, through indicatif's formatter.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{BinaryBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use slipway_oci::Progress;

use crate::cli::GlobalArgs;

/// Shows download progress: a bar per image (bytes, rate) when standard
/// error is a terminal, else a line when an image starts and ends.
pub struct ProgressDisplay {
    bars: Option<MultiProgress>,
    quiet: bool,
    images: Mutex<HashMap<String, ImageProgress>>,
}

struct ImageProgress {
    bar: Option<ProgressBar>,
    started: Instant,
    total: u64,
}

impl ProgressDisplay {
    pub fn new(global: &GlobalArgs) -> ProgressDisplay {
        let terminal = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let quiet = global.level() == 0;
        ProgressDisplay {
            bars: (terminal && !quiet)
                .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            quiet,
            images: Mutex::new(HashMap::new()),
        }
    }

    /// Removes the bars, before the results are printed.
    pub fn clear(&self) {
        if let Some(bars) = &self.bars {
            let _ = bars.clear();
        }
    }

    fn with_image(&self, reference: &str, f: impl FnOnce(&mut ImageProgress)) {
        if let Ok(mut images) = self.images.lock()
            && let Some(image) = images.get_mut(reference)
        {
            f(image);
        }
    }
}

impl Progress for ProgressDisplay {
    #[allow(
        clippy::disallowed_methods,
        reason = "the pull rate shown when an image is fetched"
    )]
    fn start(&self, reference: &str, total: u64) {
        if self.quiet {
            return;
        }
        let bar = self.bars.as_ref().map(|bars| {
            let bar = bars.add(ProgressBar::new(total));
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:24}] {bytes}/{total_bytes} {binary_bytes_per_sec}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(reference.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        if bar.is_none() {
            eprintln!("slipway: pulling {reference} ({})", BinaryBytes(total));
        }
        if let Ok(mut images) = self.images.lock() {
            images.insert(
                reference.to_string(),
                ImageProgress {
                    bar,
                    started: Instant::now(),
                    total,
                },
            );
        }
    }

    fn advance(&self, reference: &str, bytes: u64) {
        self.with_image(reference, |image| {
            if let Some(bar) = &image.bar {
                bar.inc(bytes);
            }
        });
    }

    fn rewind(&self, reference: &str, bytes: u64) {
        self.with_image(reference, |image| {
            if let Some(bar) = &image.bar {
                bar.set_position(bar.position().saturating_sub(bytes));
            }
        });
    }

    fn finish(&self, reference: &str) {
        self.with_image(reference, |image| match &image.bar {
            Some(bar) => bar.finish(),
            None if !self.quiet => {
                let secs = image.started.elapsed().as_secs_f64().max(1e-3);
                let rate = (image.total as f64 / secs) as u64;
                eprintln!(
                    "slipway: pulled {reference} ({} in {secs:.1} s, {}/s)",
                    BinaryBytes(image.total),
                    BinaryBytes(rate)
                );
            }
            None => {}
        });
    }
}
