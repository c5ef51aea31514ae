//! The parts of the prometheus-operator CRDs (`monitoring.coreos.com/v1` PodMonitor and
//! ServiceMonitor) that the agent acts on, read from the objects' JSON with the CRD's field
//! names. Fields that reference Secrets (basicAuth, bearerTokenSecret, tlsConfig, oauth2) are
//! not read: the agent does not read Secrets (a monitor that needs them is scraped without).

use std::collections::BTreeMap;

use serde::Deserialize;

/// `spec` of a PodMonitor or ServiceMonitor.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct MonitorSpec {
    pub job_label: String,
    pub target_labels: Vec<String>,
    pub pod_target_labels: Vec<String>,
    pub selector: LabelSelector,
    pub namespace_selector: NamespaceSelector,
    /// PodMonitor.
    pub pod_metrics_endpoints: Vec<Endpoint>,
    /// ServiceMonitor.
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<Requirement>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Requirement {
    pub key: String,
    pub operator: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct NamespaceSelector {
    pub any: bool,
    pub match_names: Vec<String>,
}

/// An int-or-string port (`targetPort`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i64),
    Str(String),
}

impl IntOrString {
    pub fn as_string(&self) -> String {
        match self {
            IntOrString::Int(i) => i.to_string(),
            IntOrString::Str(s) => s.clone(),
        }
    }
}

/// A `podMetricsEndpoints[]` / `endpoints[]` entry.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Endpoint {
    pub port: Option<String>,
    pub port_number: Option<i64>,
    pub target_port: Option<IntOrString>,
    pub path: String,
    pub scheme: String,
    pub params: BTreeMap<String, Vec<String>>,
    pub interval: String,
    pub scrape_timeout: String,
    pub honor_labels: bool,
    pub honor_timestamps: Option<bool>,
    pub follow_redirects: Option<bool>,
    pub enable_http2: Option<bool>,
    pub filter_running: Option<bool>,
    pub relabelings: Vec<RelabelConfig>,
    pub metric_relabelings: Vec<RelabelConfig>,
}

/// The operator's RelabelConfig (Prometheus' relabel_config in camelCase).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct RelabelConfig {
    pub source_labels: Vec<String>,
    pub separator: Option<String>,
    pub target_label: Option<String>,
    pub regex: Option<String>,
    pub modulus: Option<u64>,
    pub replacement: Option<String>,
    pub action: Option<String>,
}

/// One monitor object: where it lives and what it asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Monitor {
    pub namespace: String,
    pub name: String,
    pub spec: MonitorSpec,
}

impl Monitor {
    /// Reads a monitor from its JSON object (`metadata` + `spec`).
    pub fn from_object(
        meta_namespace: &str,
        name: &str,
        spec: &serde_json::Value,
    ) -> Result<Monitor, String> {
        let spec: MonitorSpec = serde_json::from_value(spec.clone())
            .map_err(|e| format!("monitor {meta_namespace}/{name}: invalid spec: {e}"))?;
        Ok(Monitor {
            namespace: meta_namespace.to_string(),
            name: name.to_string(),
            spec,
        })
    }

    /// The namespaces whose targets the monitor selects: `None` means all
    /// (`namespaceSelector.any`), none given means the monitor's own.
    pub fn target_namespaces(&self) -> Option<Vec<String>> {
        let sel = &self.spec.namespace_selector;
        if sel.any {
            None
        } else if sel.match_names.is_empty() {
            Some(vec![self.namespace.clone()])
        } else {
            Some(sel.match_names.clone())
        }
    }
}
