//! `slipway build --resolve-only`: every image of the configuration resolved
//! to a digest, fetching what the cache lacks (all images at once, bounded),
//! printed in the order of the configuration. A build starts from the same
//! step. Also the progress display shared with `cache pull`.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use slipway_config::model::ImageName;
use slipway_config::source::{Sp, Span};
use slipway_config::{Config, Loaded};
use slipway_oci::{Progress, PullPolicy, Puller, ResolvedImage, Store, cache_name};
use slipway_reference::Reference;

use super::build::BuildArgs;
use super::cache::{cache_dir, client, platform, runtime};
use crate::Outcome;
use crate::cli::GlobalArgs;

/// Images fetched at once (each with its own blobs in parallel too).
pub(crate) const PARALLEL_IMAGES: usize = 4;

/// One image of the configuration: what it is for, and where it was written.
#[derive(Debug)]
struct Wanted<'a> {
    role: String,
    image: &'a Sp<ImageName>,
}

/// Every image of `config`, in build order: kernel, init, volumes,
/// onboot, onshutdown, services.
fn images(config: &Config) -> Vec<Wanted<'_>> {
    let mut out = Vec::new();
    if let Some(image) = config.kernel.as_ref().and_then(|k| k.value.image.as_ref()) {
        out.push(Wanted {
            role: "kernel".into(),
            image,
        });
    }
    if let Some(init) = &config.init {
        for image in &init.value {
            out.push(Wanted {
                role: "init".into(),
                image,
            });
        }
    }
    if let Some(volumes) = &config.volumes {
        for volume in &volumes.value {
            if let Some(image) = &volume.value.image {
                let name = volume.value.name.as_ref().map_or("", |n| n.value.as_str());
                out.push(Wanted {
                    role: format!("volume {name}"),
                    image,
                });
            }
        }
    }
    for section in slipway_config::model::Section::ALL {
        for entry in config.section(section) {
            out.push(Wanted {
                role: format!("{} {}", section.key(), entry.name.value),
                image: &entry.image,
            });
        }
    }
    out
}

/// An error and its causes, `: `-separated, each said once (TLS and
/// connection failures are only explained by the innermost cause).
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

fn location(loaded: &Loaded, span: &Span) -> String {
    format!(
        "{}:{}:{}",
        loaded.sources.name(span.file),
        span.line,
        span.column
    )
}

/// Resolves and prints every image of the loaded configuration.
pub fn run(args: &BuildArgs, global: &GlobalArgs, loaded: &Loaded) -> anyhow::Result<Outcome> {
    let wanted = images(&loaded.config);
    let mut errors = Vec::new();
    let mut references: Vec<Reference> = Vec::new();
    for w in &wanted {
        match &w.image.value {
            ImageName::Reference(r) => {
                let r = cache_name(r);
                if !references.contains(&r) {
                    references.push(r);
                }
            }
            ImageName::Package(_) => errors.push(format!(
                "{}: error: {} ({}): package references are resolved by `slipway pkg`, not available yet",
                location(loaded, &w.image.span),
                w.image.value,
                w.role
            )),
        }
    }
    let policy = if args.offline {
        PullPolicy::Never
    } else if args.pull {
        PullPolicy::Always
    } else {
        PullPolicy::IfMissing
    };
    let platform = platform(global)?;
    let store = Store::open(cache_dir(global)?)?;
    let client = client(global)?;
    let progress = ProgressDisplay::new(global);
    let puller = Puller::new(&store, &client).with_progress(&progress);
    let results: Vec<Result<ResolvedImage, slipway_oci::RegistryError>> = runtime()?.block_on(
        futures_util::stream::iter(
            references
                .iter()
                .map(|r| puller.resolve(r, &platform, policy)),
        )
        .buffered(PARALLEL_IMAGES)
        .collect(),
    );
    progress.clear();
    let resolved: HashMap<String, Result<ResolvedImage, slipway_oci::RegistryError>> = references
        .iter()
        .map(ToString::to_string)
        .zip(results)
        .collect();
    let mut lines = Vec::new();
    for w in &wanted {
        let ImageName::Reference(r) = &w.image.value else {
            continue;
        };
        let name = cache_name(r).to_string();
        match resolved.get(&name) {
            Some(Ok(image)) => lines.push(format!("{name} {}", image.digest())),
            Some(Err(e)) => errors.push(format!(
                "{}: error: {name} ({}): {}",
                location(loaded, &w.image.span),
                w.role,
                chain(e)
            )),
            None => {}
        }
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{e}");
        }
        anyhow::bail!(
            "{} of the configuration's images could not be resolved",
            errors.len()
        );
    }
    for line in lines {
        println!("{line}");
    }
    Ok(Outcome::Success)
}

/// Shows download progress: a bar per image (bytes, rate) when standard
/// error is a terminal, else a line when an image starts and ends.
pub(crate) struct ProgressDisplay {
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
    pub(crate) fn new(global: &GlobalArgs) -> ProgressDisplay {
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
    pub(crate) fn clear(&self) {
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

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

impl Progress for ProgressDisplay {
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
            eprintln!("slipway: pulling {reference} ({})", megabytes(total));
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
                eprintln!(
                    "slipway: pulled {reference} ({} in {secs:.1} s, {:.1} MB/s)",
                    megabytes(image.total),
                    image.total as f64 / 1e6 / secs
                );
            }
            None => {}
        });
    }
}
