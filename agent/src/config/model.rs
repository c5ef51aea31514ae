//! The component configuration model: what each supported component's block means after
//! parsing and checking, with every default in one place and its source. Owns no parsing.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::discovery::Target;
use crate::http_client::ClientSettings;
use crate::relabel::Rule;

/// Prometheus / Alloy `scrape_interval` default.
pub const SCRAPE_INTERVAL_DEFAULT: Duration = Duration::from_secs(60);
/// Prometheus / Alloy `scrape_timeout` default.
pub const SCRAPE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// Prometheus / Alloy `metrics_path` default.
pub const METRICS_PATH_DEFAULT: &str = "/metrics";
/// Prometheus / Alloy `scheme` default.
pub const SCHEME_DEFAULT: &str = "http";
/// Largest scrape response body read. Alloy's default is unlimited; we bound it.
pub const BODY_SIZE_LIMIT_DEFAULT_BYTES: u64 = 64 * 1024 * 1024;
/// Prometheus file_sd / Alloy `discovery.file` `refresh_interval` default.
pub const FILE_REFRESH_INTERVAL_DEFAULT: Duration = Duration::from_secs(5 * 60);
/// Alloy `prometheus.relabel` `max_cache_size` default.
pub const RELABEL_CACHE_SIZE_DEFAULT: usize = 100_000;
/// Alloy `endpoint.remote_timeout` default.
pub const REMOTE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

/// A whole configuration file. Components keep source order.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Config {
    pub scrapes: Vec<ScrapeConfig>,
    pub file_discoveries: Vec<FileDiscoveryConfig>,
    pub discovery_relabels: Vec<DiscoveryRelabelConfig>,
    pub metric_relabels: Vec<MetricRelabelConfig>,
    pub remote_writes: Vec<RemoteWriteConfig>,
    // Skipped when empty, so the configuration hash of a file without these components is
    // the one earlier versions computed (no false configuration drift during an upgrade).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kubernetes_discoveries: Vec<KubernetesDiscoveryConfig>,
    /// `prometheus.operator.podmonitors` and `prometheus.operator.servicemonitors`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub operators: Vec<OperatorConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub profile_scrapes: Vec<super::pyroscope::ProfileScrapeConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub profile_writes: Vec<super::pyroscope::ProfileWriteConfig>,
}

/// Where samples go: the `receiver` export of a component.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Receiver {
    /// `prometheus.remote_write.NAME.receiver`.
    RemoteWrite(String),
    /// `prometheus.relabel.NAME.receiver`.
    Relabel(String),
}

impl Receiver {
    /// The component id, e.g. `prometheus.relabel.NAME`.
    pub fn id(&self) -> String {
        match self {
            Receiver::RemoteWrite(n) => format!("prometheus.remote_write.{n}"),
            Receiver::Relabel(n) => format!("prometheus.relabel.{n}"),
        }
    }
}

/// `discovery.relabel "NAME" { targets = ...  rule { ... } }`: exports `output`, the targets
/// after the rules (those a rule drops are gone), and `rules`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiscoveryRelabelConfig {
    pub name: String,
    pub targets: Vec<TargetsSource>,
    pub rules: Vec<Rule>,
}

/// `prometheus.relabel "NAME" { forward_to = [...]  rule { ... } }`: exports `receiver`;
/// applies the rules to every sample's series labels and forwards what is kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricRelabelConfig {
    pub name: String,
    pub forward_to: Vec<Receiver>,
    pub rules: Vec<Rule>,
    /// Relabel results kept per series (Alloy default 100000).
    pub max_cache_size: usize,
}

/// `prometheus.scrape "NAME" { ... }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScrapeConfig {
    /// The block label (`NAME`).
    pub name: String,
    pub targets: Vec<TargetsSource>,
    /// The receivers that get the samples.
    pub forward_to: Vec<Receiver>,
    /// Default: the component id, `prometheus.scrape.NAME` (as Alloy).
    pub job_name: String,
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
    pub metrics_path: String,
    pub scheme: String,
    /// Default false: scraped labels that clash with target labels become `exported_NAME`.
    pub honor_labels: bool,
    /// Default true: timestamps in the exposition are kept.
    pub honor_timestamps: bool,
    pub body_size_limit_bytes: u64,
    /// `params = { NAME = ["value", ...] }`: query parameters of every scrape URL (a target's
    /// `__param_NAME` label overrides its first value).
    pub params: BTreeMap<String, Vec<String>>,
    /// `clustering { enabled = true }`: scrape only the targets this node owns.
    pub clustering_enabled: bool,
    /// TLS, authentication, proxy, redirects, HTTP/2.
    pub client: ClientSettings,
}

impl ScrapeConfig {
    /// A scrape config with every default (no targets, nothing forwarded).
    pub fn with_defaults(name: &str) -> ScrapeConfig {
        ScrapeConfig {
            name: name.to_string(),
            targets: Vec::new(),
            forward_to: Vec::new(),
            job_name: format!("prometheus.scrape.{name}"),
            scrape_interval: SCRAPE_INTERVAL_DEFAULT,
            scrape_timeout: SCRAPE_TIMEOUT_DEFAULT,
            metrics_path: METRICS_PATH_DEFAULT.to_string(),
            scheme: SCHEME_DEFAULT.to_string(),
            honor_labels: false,
            honor_timestamps: true,
            body_size_limit_bytes: BODY_SIZE_LIMIT_DEFAULT_BYTES,
            params: BTreeMap::new(),
            clustering_enabled: false,
            client: ClientSettings::default(),
        }
    }

    /// The component id, `prometheus.scrape.NAME`.
    pub fn id(&self) -> String {
        format!("prometheus.scrape.{}", self.name)
    }
}

/// Where a scrape component's targets come from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum TargetsSource {
    /// A target written in the config.
    Static(Target),
    /// `discovery.file.NAME.targets`.
    DiscoveryFile(String),
    /// `discovery.relabel.NAME.output`.
    DiscoveryRelabel(String),
    /// `discovery.kubernetes.NAME.targets`.
    DiscoveryKubernetes(String),
}

/// `discovery.file "NAME" { files = [...] refresh_interval = "5m" }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileDiscoveryConfig {
    pub name: String,
    /// Paths; the file name part may hold `*` and `?`.
    pub files: Vec<String>,
    pub refresh_interval: Duration,
}

/// `prometheus.remote_write "NAME" { endpoint { ... } external_labels = {...} }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoteWriteConfig {
    pub name: String,
    pub endpoints: Vec<EndpointConfig>,
    /// Added to every series that lacks the label.
    pub external_labels: BTreeMap<String, String>,
    /// `wal { ... }`: the bounds of the component's write-ahead log.
    pub wal: WalConfig,
}

/// `wal { truncate_frequency min_keepalive_time max_keepalive_time max_size }` of
/// `prometheus.remote_write`; Alloy's names and defaults, plus a size bound of ours.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WalConfig {
    /// How often the log is truncated. Alloy default 2h.
    pub truncate_frequency: Duration,
    /// Data younger than this is kept even when every endpoint has sent it. Alloy default 5m.
    pub min_keepalive_time: Duration,
    /// Data older than this is removed even if an endpoint has not sent it (and counted as
    /// dropped). Alloy default 8h.
    pub max_keepalive_time: Duration,
    /// Disk the log may use; past it the oldest data goes, sent or not (ours: Alloy has no
    /// size bound). Default 4GiB.
    pub max_size_bytes: u64,
}

impl Default for WalConfig {
    fn default() -> WalConfig {
        WalConfig {
            truncate_frequency: Duration::from_secs(2 * 3600),
            min_keepalive_time: Duration::from_secs(5 * 60),
            max_keepalive_time: Duration::from_secs(8 * 3600),
            max_size_bytes: 4 << 30,
        }
    }
}

/// `endpoint { url = "..." ... queue_config { ... } }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointConfig {
    pub url: String,
    /// Default: the URL (used in logs and metrics).
    pub name: String,
    pub remote_timeout: Duration,
    pub queue: QueueConfig,
    /// `metadata_config { ... }`. Left out of the configuration hash while it has its
    /// defaults, so files that do not set it hash as before it existed.
    #[serde(skip_serializing_if = "MetadataConfig::is_default")]
    pub metadata: MetadataConfig,
    /// TLS, authentication, extra `headers`, proxy, redirects, HTTP/2.
    pub client: ClientSettings,
}

/// `metadata_config { ... }` of an endpoint, with Alloy's (and Prometheus') names and
/// defaults: every `send_interval`, the metric metadata of the scraped targets is sent in
/// requests of its own, at most `max_samples_per_send` entries each.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetadataConfig {
    /// Default true.
    pub send: bool,
    /// Default 1m.
    pub send_interval: Duration,
    /// Default 500.
    pub max_samples_per_send: usize,
}

impl Default for MetadataConfig {
    fn default() -> MetadataConfig {
        MetadataConfig {
            send: true,
            send_interval: Duration::from_secs(60),
            max_samples_per_send: 500,
        }
    }
}

impl MetadataConfig {
    pub fn is_default(&self) -> bool {
        *self == MetadataConfig::default()
    }
}

impl EndpointConfig {
    /// An endpoint with every default; its name is the URL without any `user:password@`.
    pub fn with_defaults(url: &str) -> EndpointConfig {
        EndpointConfig {
            url: url.to_string(),
            name: crate::http_client::redact_url(url),
            remote_timeout: REMOTE_TIMEOUT_DEFAULT,
            queue: QueueConfig::default(),
            metadata: MetadataConfig::default(),
            client: ClientSettings::default(),
        }
    }
}

/// `queue_config { ... }`, with Alloy's names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueConfig {
    /// Samples buffered in memory per shard; when full, reading the WAL waits (nothing is
    /// dropped). Alloy default 10000.
    pub capacity: usize,
    /// Fewest parallel senders. Alloy default 1.
    pub min_shards: usize,
    /// Most parallel senders. Alloy default 50.
    pub max_shards: usize,
    /// Alloy default 2000.
    pub max_samples_per_send: usize,
    /// A partial batch is sent after waiting this long. Alloy default 5s.
    pub batch_send_deadline: Duration,
    /// First retry delay, doubled per retry. Alloy default 30ms.
    pub min_backoff: Duration,
    /// Retry delay cap. Alloy default 5s.
    pub max_backoff: Duration,
    /// Retry on HTTP 429 like a 5xx. Alloy default true.
    pub retry_on_http_429: bool,
}

impl Default for QueueConfig {
    fn default() -> QueueConfig {
        QueueConfig {
            capacity: 10_000,
            min_shards: 1,
            max_shards: 50,
            max_samples_per_send: 2000,
            batch_send_deadline: Duration::from_secs(5),
            min_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_secs(5),
            retry_on_http_429: true,
        }
    }
}

/// Prometheus' kubernetes_sd `refresh`-less default: targets are passed on at most this often
/// (a burst of pod events becomes one list). Prometheus' discovery manager sends at most every
/// 5 s; 1 s here, so a new pod is scraped sooner, and one rebuild per second of churn is cheap.
pub const KUBERNETES_DEBOUNCE: Duration = Duration::from_secs(1);

/// A `role` of `discovery.kubernetes` (and of its `selectors` blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum KubernetesRole {
    Pod,
    Service,
    Endpoints,
    EndpointSlice,
    Node,
    Ingress,
}

impl KubernetesRole {
    pub const ALL: [KubernetesRole; 6] = [
        KubernetesRole::Pod,
        KubernetesRole::Service,
        KubernetesRole::Endpoints,
        KubernetesRole::EndpointSlice,
        KubernetesRole::Node,
        KubernetesRole::Ingress,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KubernetesRole::Pod => "pod",
            KubernetesRole::Service => "service",
            KubernetesRole::Endpoints => "endpoints",
            KubernetesRole::EndpointSlice => "endpointslice",
            KubernetesRole::Node => "node",
            KubernetesRole::Ingress => "ingress",
        }
    }

    pub fn parse(s: &str) -> Option<KubernetesRole> {
        KubernetesRole::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The roles whose `selectors` a discovery of this role accepts (Prometheus' rule).
    pub fn allowed_selectors(self) -> &'static [KubernetesRole] {
        use KubernetesRole::*;
        match self {
            Pod => &[Pod, Node],
            Service => &[Service],
            Endpoints => &[Pod, Service, Endpoints],
            EndpointSlice => &[Pod, Service, EndpointSlice],
            Node => &[Node],
            Ingress => &[Ingress],
        }
    }
}

/// How a Kubernetes component reaches the API server: in-cluster (service account token, CA,
/// `KUBERNETES_SERVICE_HOST`/`PORT`) when neither is set.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct KubernetesApiConfig {
    pub api_server: Option<String>,
    pub kubeconfig_file: Option<String>,
    /// Client settings; only with `api_server` (Prometheus' rule).
    pub client: ClientSettings,
}

/// `selectors { role = "pod" label = "app=x" field = "spec.nodeName=n" }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KubernetesSelector {
    pub role: KubernetesRole,
    pub label: String,
    pub field: String,
}

/// `discovery.kubernetes "NAME" { role = "pod" ... }`: exports `targets`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KubernetesDiscoveryConfig {
    pub name: String,
    pub role: KubernetesRole,
    pub api: KubernetesApiConfig,
    /// `namespaces { names = [...] }`; empty (and no `own_namespace`) means all namespaces.
    pub namespaces: Vec<String>,
    /// `namespaces { own_namespace = true }`: the namespace of the agent's pod too.
    pub own_namespace: bool,
    pub selectors: Vec<KubernetesSelector>,
    /// `attach_metadata { node = true }`: node labels on pod and endpoint targets.
    pub attach_node_metadata: bool,
}

impl KubernetesDiscoveryConfig {
    /// The selector given for objects of `role`, if any.
    pub fn selector(&self, role: KubernetesRole) -> Option<&KubernetesSelector> {
        self.selectors.iter().find(|s| s.role == role)
    }
}

/// Which monitor objects an operator component watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum MonitorKind {
    PodMonitors,
    ServiceMonitors,
}

impl MonitorKind {
    /// `prometheus.operator.podmonitors` / `.servicemonitors`.
    pub fn component(self) -> &'static str {
        match self {
            MonitorKind::PodMonitors => "prometheus.operator.podmonitors",
            MonitorKind::ServiceMonitors => "prometheus.operator.servicemonitors",
        }
    }
}

/// `selector { match_labels = {...} match_expression { key operator values } }`: Kubernetes'
/// LabelSelector.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct LabelSelectorConfig {
    pub match_labels: BTreeMap<String, String>,
    /// `(key, operator, values)`; operator one of In, NotIn, Exists, DoesNotExist.
    pub match_expressions: Vec<(String, String, Vec<String>)>,
}

/// `prometheus.operator.podmonitors "NAME"` / `prometheus.operator.servicemonitors "NAME"`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorConfig {
    pub name: String,
    pub kind: MonitorKind,
    pub forward_to: Vec<Receiver>,
    /// Namespaces whose monitors are read; empty means all.
    pub namespaces: Vec<String>,
    pub api: KubernetesApiConfig,
    /// Which monitors are used.
    pub selector: LabelSelectorConfig,
    /// `rule { ... }` blocks: applied to every discovered target after the monitor's own.
    pub rules: Vec<Rule>,
    /// `scrape { default_scrape_interval default_scrape_timeout }` (Alloy defaults 1m, 10s).
    pub default_scrape_interval: Duration,
    pub default_scrape_timeout: Duration,
    pub clustering_enabled: bool,
    /// servicemonitors: `kubernetes_role`, "endpoints" (default) or "endpointslice".
    pub endpoint_role: KubernetesRole,
}

impl OperatorConfig {
    pub fn id(&self) -> String {
        format!("{}.{}", self.kind.component(), self.name)
    }
}
