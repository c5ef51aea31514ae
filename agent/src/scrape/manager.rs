//! [`ScrapeManager`]: the scrape side of one `prometheus.scrape` component. The caller (the
//! clustering glue) hands it exactly the targets this node should scrape; the manager starts a
//! loop for each new one and stops the loops of targets no longer handed in. It does not
//! decide ownership.
//!
//! Hand-over contract (alloy#249, #784):
//! - A target dropped by [`ScrapeManager::set_targets`] is assumed to have moved to another
//!   node: its loop stops and writes **no** staleness markers, so the new owner's samples
//!   continue the series.
//! - Every target is scraped on a fixed phase, the same on every node. A target that appears
//!   in `set_targets` is scraped **at once** if its last slot passed within the catch-up
//!   window (the old owner may have stopped just before it), otherwise at its next slot
//!   (the old owner scraped the last one). Either way the series has no gap larger than one
//!   interval plus the time the news took to travel, and no burst of every target at once.
//! - Targets that are gone for good (no longer discovered at all) can be passed to
//!   [`ScrapeManager::set_targets_marking_gone`], which does write staleness markers.
//!
//! Must be used inside a tokio runtime (it spawns one task per target).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::config::ScrapeConfig;
use crate::discovery::Target;

use super::sample::Appender;
use super::scrape_loop::{self, Health, LoopContext, LoopSettings, Sinks, StopMode, TargetStatus};
use super::target::ScrapeTarget;
use crate::http_client::{HttpClient, USER_AGENT};

/// Default of [`ManagerOptions::catch_up_window`].
pub const CATCH_UP_WINDOW_DEFAULT: Duration = Duration::from_secs(2);

/// Options that are not part of the Alloy block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerOptions {
    /// Scrape a newly handed-in target at once when its slot passed less than
    /// `catch_up_window` ago (default true; see the module doc). Without clustering there is
    /// no hand-over and targets simply start on their slot, as in Prometheus.
    pub scrape_new_targets_immediately: bool,
    /// How far back a slot may lie to be caught up at once. The old owner stops when it
    /// learns of the move, the new owner starts when it does; only a slot that fell between
    /// the two (the news' propagation, well under this) was missed. Older slots were scraped
    /// by the old owner, so the target waits for its next slot. This keeps a large hand-over
    /// (or a start with many targets) from scraping everything in the same instant and
    /// overflowing the remote_write queues. Default 2 s; `Duration::MAX` = always at once.
    pub catch_up_window: Duration,
    /// Mixed into every target's phase. Keep 0 in a cluster so phases match across nodes.
    pub jitter_seed: u64,
    /// Most targets one manager runs; extra targets are refused and reported.
    pub targets_max: usize,
}

impl Default for ManagerOptions {
    fn default() -> ManagerOptions {
        ManagerOptions {
            scrape_new_targets_immediately: true,
            catch_up_window: CATCH_UP_WINDOW_DEFAULT,
            jitter_seed: 0,
            targets_max: 100_000,
        }
    }
}

/// What one `set_targets` call changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub started: usize,
    pub stopped: usize,
    pub kept: usize,
    /// Targets that could not be scraped, with why (e.g. missing `__address__`).
    pub invalid: Vec<(Target, String)>,
}

struct RunningLoop {
    target: Arc<ScrapeTarget>,
    stop: watch::Sender<Option<StopMode>>,
    status: Arc<Mutex<TargetStatus>>,
    task: tokio::task::JoinHandle<()>,
}

struct State {
    config: ScrapeConfig,
    loops: HashMap<u64, RunningLoop>,
}

/// Runs the scrape loops of one `prometheus.scrape` component.
pub struct ScrapeManager {
    state: Mutex<State>,
    sinks: Sinks,
    /// Built from the config's client settings; replaced when they change.
    client: Mutex<HttpClient>,
    options: ManagerOptions,
}

impl ScrapeManager {
    /// A manager with no targets yet. `sinks` are the `forward_to` receivers. Fails if the
    /// client settings name a file that cannot be read or used.
    pub fn new(
        config: ScrapeConfig,
        sinks: Vec<Arc<dyn Appender>>,
    ) -> Result<ScrapeManager, String> {
        ScrapeManager::with_options(config, sinks, ManagerOptions::default())
    }

    pub fn with_options(
        config: ScrapeConfig,
        sinks: Vec<Arc<dyn Appender>>,
        options: ManagerOptions,
    ) -> Result<ScrapeManager, String> {
        let client = HttpClient::new(&config.client, USER_AGENT).map_err(|e| e.to_string())?;
        Ok(ScrapeManager {
            state: Mutex::new(State {
                config,
                loops: HashMap::new(),
            }),
            sinks: Arc::new(RwLock::new(sinks)),
            client: Mutex::new(client),
            options,
        })
    }

    /// Scrape exactly `owned` from now on. Removed targets stop silently (moved, no
    /// staleness markers); new ones are scraped at once.
    pub fn set_targets(&self, owned: Vec<Target>) -> SyncReport {
        self.sync(owned, &[])
    }

    /// Like [`ScrapeManager::set_targets`], but removed targets that are also in `gone` get
    /// staleness markers for their last series (the target vanished from discovery).
    pub fn set_targets_marking_gone(&self, owned: Vec<Target>, gone: &[Target]) -> SyncReport {
        self.sync(owned, gone)
    }

    fn sync(&self, owned: Vec<Target>, gone: &[Target]) -> SyncReport {
        let mut state = self.state.lock().unwrap();
        let mut report = SyncReport::default();
        let mut wanted: HashMap<u64, ScrapeTarget> = HashMap::new();
        for t in owned {
            match ScrapeTarget::new(&t, &state.config) {
                Ok(st) => {
                    wanted.entry(st.id).or_insert(st);
                }
                Err(e) => report.invalid.push((t, e)),
            }
        }
        let gone_ids: HashSet<u64> = gone
            .iter()
            .filter_map(|t| ScrapeTarget::new(t, &state.config).ok())
            .map(|t| t.id)
            .collect();

        let removed: Vec<u64> = state
            .loops
            .keys()
            .filter(|id| !wanted.contains_key(id))
            .copied()
            .collect();
        for id in removed {
            let running = state.loops.remove(&id).expect("listed above");
            let mode = if gone_ids.contains(&id) {
                StopMode::Gone
            } else {
                StopMode::Moved
            };
            // The loop exits at its next await point; nothing waits for it.
            let _ = running.stop.send(Some(mode));
            report.stopped += 1;
        }

        let settings = settings(&state.config, &self.options);
        for (id, target) in wanted {
            if state.loops.contains_key(&id) {
                report.kept += 1;
                continue;
            }
            if state.loops.len() >= self.options.targets_max {
                report.invalid.push((
                    target.discovered.clone(),
                    format!(
                        "more than {} targets; target not scraped",
                        self.options.targets_max
                    ),
                ));
                continue;
            }
            let running = self.start(target, settings.clone());
            state.loops.insert(id, running);
            report.started += 1;
        }
        for (t, why) in &report.invalid {
            tracing::warn!(component = %state.config.id(), target = ?t.labels(), %why, "target not scraped");
        }
        report
    }

    fn start(&self, target: ScrapeTarget, settings: LoopSettings) -> RunningLoop {
        let target = Arc::new(target);
        let status = Arc::new(Mutex::new(TargetStatus {
            labels: target.labels.clone(),
            url: target.url.clone(),
            health: Health::Unknown,
            last_error: None,
            last_scrape: None,
            last_scrape_duration: Duration::ZERO,
            last_samples_scraped: 0,
            scrapes_total: 0,
        }));
        let (stop, stop_rx) = watch::channel(None);
        let cx = LoopContext {
            target: target.clone(),
            settings,
            client: self.client.lock().unwrap().clone(),
            sinks: self.sinks.clone(),
            status: status.clone(),
            catch_up_window: self
                .options
                .scrape_new_targets_immediately
                .then_some(self.options.catch_up_window),
        };
        let task = tokio::spawn(scrape_loop::run(cx, stop_rx));
        RunningLoop {
            target,
            stop,
            status,
            task,
        }
    }

    /// Applies a reloaded config and receivers. Receivers are swapped in place; loops restart
    /// only when something they use changed (interval, timeout, labels, path, ...), and a
    /// restart is a hand-over to ourselves: no staleness markers, immediate scrape.
    ///
    /// New client settings (TLS, authentication, proxy) build a new client first; if that
    /// fails nothing changes and the error says why.
    pub fn update(
        &self,
        config: ScrapeConfig,
        sinks: Vec<Arc<dyn Appender>>,
    ) -> Result<(), String> {
        let mut state = self.state.lock().unwrap();
        let new_client = if state.config.client != config.client {
            Some(HttpClient::new(&config.client, USER_AGENT).map_err(|e| e.to_string())?)
        } else {
            None
        };
        *self.sinks.write().unwrap() = sinks;
        if state.config == config {
            return Ok(());
        }
        let targets: Vec<Target> = state
            .loops
            .values()
            .map(|l| l.target.discovered.clone())
            .collect();
        let old_settings = settings(&state.config, &self.options);
        let new_settings = settings(&config, &self.options);
        state.config = config;
        let restart_all = old_settings != new_settings || new_client.is_some();
        drop(state);
        if let Some(client) = new_client {
            *self.client.lock().unwrap() = client;
        }
        if restart_all {
            self.stop_all(StopMode::Moved);
        }
        // Targets whose identity changed (job, scheme, path) are restarted by the sync.
        self.sync(targets, &[]);
        Ok(())
    }

    /// The status of every running target, sorted by URL.
    pub fn targets(&self) -> Vec<TargetStatus> {
        let state = self.state.lock().unwrap();
        let mut out: Vec<TargetStatus> = state
            .loops
            .values()
            .map(|l| l.status.lock().unwrap().clone())
            .collect();
        out.sort_by(|a, b| a.url.cmp(&b.url));
        out
    }

    /// How many loops run.
    pub fn len(&self) -> usize {
        self.state.lock().unwrap().loops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops every loop. `Moved` for a graceful agent stop (the other nodes take over).
    pub fn stop_all(&self, mode: StopMode) {
        let mut state = self.state.lock().unwrap();
        for (_, running) in state.loops.drain() {
            let _ = running.stop.send(Some(mode));
        }
    }
}

impl Drop for ScrapeManager {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap();
        for (_, running) in state.loops.drain() {
            let _ = running.stop.send(Some(StopMode::Moved));
            // A loop blocked in a scrape notices the stop too; abort is only a backstop.
            running.task.abort();
        }
    }
}

fn settings(config: &ScrapeConfig, options: &ManagerOptions) -> LoopSettings {
    LoopSettings {
        interval: config.scrape_interval,
        timeout: config.scrape_timeout,
        honor_labels: config.honor_labels,
        honor_timestamps: config.honor_timestamps,
        body_size_limit_bytes: config.body_size_limit_bytes,
        jitter_seed: options.jitter_seed,
    }
}
