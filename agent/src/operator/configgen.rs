//! A monitor endpoint to a scrape job, with the prometheus-operator's semantics (the facts
//! Alloy's `prometheus.operator.*` and the operator's generated configs follow): one job per
//! endpoint named `podMonitor/NS/NAME/I` or `serviceMonitor/NS/NAME/I`, its scrape settings
//! from the endpoint (falling back to the component's `scrape {}` defaults), and target
//! relabel rules that keep what the monitor selects (label selector, port, running pods), set
//! `namespace`, `container`, `pod`, `service`, `node`, `job`, `endpoint` and the requested
//! target labels, then the endpoint's own relabelings and the component's `rule` blocks.
//! Metric relabelings become the job's metric rules. Pure: no I/O.

use crate::config::{parse_duration, KubernetesRole, MonitorKind, OperatorConfig, ScrapeConfig};
use crate::discovery::Target;
use crate::kubernetes::roles::sanitize;
use crate::relabel::{relabel_targets, Rule, RuleSpec};

use super::monitor::{Endpoint, Monitor, RelabelConfig};

/// One scrape job of a monitor endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub scrape: ScrapeConfig,
    pub target_rules: Vec<Rule>,
    pub metric_rules: Vec<Rule>,
    /// Namespaces whose targets the job takes (`None`: all).
    pub namespaces: Option<Vec<String>>,
}

impl Job {
    /// The job's targets among `discovered` (the role's targets in every watched namespace).
    pub fn targets(&self, discovered: &[Target]) -> Vec<Target> {
        let mine: Vec<Target> = discovered
            .iter()
            .filter(|t| match &self.namespaces {
                None => true,
                Some(ns) => t
                    .get("__meta_kubernetes_namespace")
                    .is_some_and(|n| ns.iter().any(|x| x == n)),
            })
            .map(|t| {
                let mut t = t.clone();
                t.insert("job", self.scrape.job_name.clone());
                t
            })
            .collect();
        relabel_targets(mine, &self.target_rules)
    }
}

fn rule(
    source: &[&str],
    action: &str,
    regex: Option<&str>,
    target: Option<&str>,
    replacement: Option<&str>,
) -> Result<Rule, String> {
    Rule::new(RuleSpec {
        source_labels: Some(source.iter().map(|s| s.to_string()).collect()),
        separator: Some(";".into()),
        regex: regex.map(str::to_string),
        modulus: None,
        target_label: target.map(str::to_string),
        replacement: replacement.map(str::to_string),
        action: Some(action.to_string()),
    })
    .map_err(|e| e.to_string())
}

/// The operator's relabel configs as rules (actions are case-insensitive there).
fn user_rules(cfgs: &[RelabelConfig]) -> Result<Vec<Rule>, String> {
    cfgs.iter()
        .map(|c| {
            Rule::new(RuleSpec {
                source_labels: Some(c.source_labels.clone()),
                separator: c.separator.clone(),
                regex: c.regex.clone(),
                modulus: c.modulus,
                target_label: c.target_label.clone(),
                replacement: c.replacement.clone(),
                action: c.action.as_ref().map(|a| a.to_lowercase()),
            })
            .map_err(|e| format!("relabeling: {e}"))
        })
        .collect()
}

/// Keep/drop rules for the monitor's label selector on `__meta_kubernetes_<kind>_label_*`.
fn selector_rules(m: &Monitor, kind: &str, out: &mut Vec<Rule>) -> Result<(), String> {
    let label = |k: &str| format!("__meta_kubernetes_{kind}_label_{}", sanitize(k));
    let present = |k: &str| format!("__meta_kubernetes_{kind}_labelpresent_{}", sanitize(k));
    let sel = &m.spec.selector;
    for (k, v) in &sel.match_labels {
        let (l, p) = (label(k), present(k));
        out.push(rule(
            &[&l, &p],
            "keep",
            Some(&format!("({v});true")),
            None,
            None,
        )?);
    }
    for e in &sel.match_expressions {
        let (l, p) = (label(&e.key), present(&e.key));
        let values = format!("({});true", e.values.join("|"));
        let r = match e.operator.as_str() {
            "In" => rule(&[&l, &p], "keep", Some(&values), None, None)?,
            "NotIn" => rule(&[&l, &p], "drop", Some(&values), None, None)?,
            "Exists" => rule(&[&p], "keep", Some("true"), None, None)?,
            "DoesNotExist" => rule(&[&p], "drop", Some("true"), None, None)?,
            other => return Err(format!("unknown selector operator {other:?}")),
        };
        out.push(r);
    }
    Ok(())
}

fn copy(source: &str, target: &str) -> Result<Rule, String> {
    rule(&[source], "replace", None, Some(target), None)
}

fn set_to(target: &str, value: &str) -> Result<Rule, String> {
    rule(&[], "replace", None, Some(target), Some(value))
}

fn if_present(source: &str, target: &str) -> Result<Rule, String> {
    rule(
        &[source],
        "replace",
        Some("(.+)"),
        Some(target),
        Some("${1}"),
    )
}

/// The scrape jobs of monitor `m`, one per endpoint.
pub fn jobs(m: &Monitor, op: &OperatorConfig) -> Result<Vec<Job>, String> {
    let (prefix, endpoints) = match op.kind {
        MonitorKind::PodMonitors => ("podMonitor", &m.spec.pod_metrics_endpoints),
        MonitorKind::ServiceMonitors => ("serviceMonitor", &m.spec.endpoints),
    };
    endpoints
        .iter()
        .enumerate()
        .map(|(i, ep)| {
            let name = format!("{prefix}/{}/{}/{i}", m.namespace, m.name);
            job(m, op, ep, name).map_err(|e| format!("{prefix} {}/{}: {e}", m.namespace, m.name))
        })
        .collect()
}

fn scrape_settings(op: &OperatorConfig, ep: &Endpoint, name: &str) -> Result<ScrapeConfig, String> {
    let mut c = ScrapeConfig::with_defaults(name);
    c.job_name = name.to_string();
    c.forward_to = op.forward_to.clone();
    c.clustering_enabled = op.clustering_enabled;
    c.scrape_interval = op.default_scrape_interval;
    c.scrape_timeout = op.default_scrape_timeout;
    let dur =
        |s: &str, what: &str| parse_duration(s).ok_or_else(|| format!("invalid {what} {s:?}"));
    if !ep.interval.is_empty() {
        c.scrape_interval = dur(&ep.interval, "interval")?;
    }
    if !ep.scrape_timeout.is_empty() {
        c.scrape_timeout = dur(&ep.scrape_timeout, "scrapeTimeout")?;
    }
    c.scrape_timeout = c.scrape_timeout.min(c.scrape_interval);
    if !ep.path.is_empty() {
        c.metrics_path = ep.path.clone();
    }
    if !ep.scheme.is_empty() {
        c.scheme = ep.scheme.to_lowercase();
    }
    c.params = ep.params.clone();
    c.honor_labels = ep.honor_labels;
    if let Some(h) = ep.honor_timestamps {
        c.honor_timestamps = h;
    }
    if let Some(f) = ep.follow_redirects {
        c.client.follow_redirects = f;
    }
    if let Some(h) = ep.enable_http2 {
        c.client.enable_http2 = h;
    }
    Ok(c)
}

fn job(m: &Monitor, op: &OperatorConfig, ep: &Endpoint, name: String) -> Result<Job, String> {
    let scrape = scrape_settings(op, ep, &name)?;
    let mut r = vec![copy("job", "__tmp_prometheus_job_name")?];
    let filter_running = rule(
        &["__meta_kubernetes_pod_phase"],
        "drop",
        Some("(Failed|Succeeded)"),
        None,
        None,
    )?;
    let port_name = ep.port.as_deref().filter(|p| !p.is_empty());
    let target_port = ep
        .target_port
        .as_ref()
        .map(|t| t.as_string())
        .filter(|t| !t.is_empty() && t != "0");
    match op.kind {
        MonitorKind::PodMonitors => {
            if ep.filter_running != Some(false) {
                r.push(filter_running.clone());
            }
            selector_rules(m, "pod", &mut r)?;
            if let Some(p) = port_name {
                r.push(rule(
                    &["__meta_kubernetes_pod_container_port_name"],
                    "keep",
                    Some(p),
                    None,
                    None,
                )?);
            } else if let Some(n) = ep.port_number.filter(|n| *n != 0) {
                r.push(rule(
                    &["__meta_kubernetes_pod_container_port_number"],
                    "keep",
                    Some(&n.to_string()),
                    None,
                    None,
                )?);
            } else if let Some(t) = &ep.target_port {
                push_target_port(&mut r, t)?;
            }
            r.push(copy("__meta_kubernetes_namespace", "namespace")?);
            r.push(copy("__meta_kubernetes_pod_container_name", "container")?);
            r.push(copy("__meta_kubernetes_pod_name", "pod")?);
            for l in &m.spec.pod_target_labels {
                r.push(if_present(
                    &format!("__meta_kubernetes_pod_label_{}", sanitize(l)),
                    &sanitize(l),
                )?);
            }
            r.push(set_to("job", &format!("{}/{}", m.namespace, m.name))?);
        }
        MonitorKind::ServiceMonitors => {
            selector_rules(m, "service", &mut r)?;
            let slice = op.endpoint_role == KubernetesRole::EndpointSlice;
            let (port_label, kind_label, name_label) = if slice {
                (
                    "__meta_kubernetes_endpointslice_port_name",
                    "__meta_kubernetes_endpointslice_address_target_kind",
                    "__meta_kubernetes_endpointslice_address_target_name",
                )
            } else {
                (
                    "__meta_kubernetes_endpoint_port_name",
                    "__meta_kubernetes_endpoint_address_target_kind",
                    "__meta_kubernetes_endpoint_address_target_name",
                )
            };
            if let Some(p) = port_name {
                r.push(rule(&[port_label], "keep", Some(p), None, None)?);
            } else if let Some(t) = &ep.target_port {
                push_target_port(&mut r, t)?;
            }
            r.push(rule(
                &[kind_label, name_label],
                "replace",
                Some("Node;(.*)"),
                Some("node"),
                Some("${1}"),
            )?);
            r.push(rule(
                &[kind_label, name_label],
                "replace",
                Some("Pod;(.*)"),
                Some("pod"),
                Some("${1}"),
            )?);
            r.push(copy("__meta_kubernetes_namespace", "namespace")?);
            r.push(copy("__meta_kubernetes_service_name", "service")?);
            r.push(copy("__meta_kubernetes_pod_container_name", "container")?);
            r.push(copy("__meta_kubernetes_pod_name", "pod")?);
            if ep.filter_running != Some(false) {
                r.push(filter_running);
            }
            for l in &m.spec.target_labels {
                r.push(if_present(
                    &format!("__meta_kubernetes_service_label_{}", sanitize(l)),
                    &sanitize(l),
                )?);
            }
            for l in &m.spec.pod_target_labels {
                r.push(if_present(
                    &format!("__meta_kubernetes_pod_label_{}", sanitize(l)),
                    &sanitize(l),
                )?);
            }
            r.push(rule(
                &["__meta_kubernetes_service_name"],
                "replace",
                None,
                Some("job"),
                Some("${1}"),
            )?);
        }
    }
    if !m.spec.job_label.is_empty() {
        let kind = if op.kind == MonitorKind::PodMonitors {
            "pod"
        } else {
            "service"
        };
        r.push(if_present(
            &format!(
                "__meta_kubernetes_{kind}_label_{}",
                sanitize(&m.spec.job_label)
            ),
            "job",
        )?);
    }
    if let Some(p) = port_name {
        r.push(set_to("endpoint", p)?);
    } else if let Some(t) = target_port {
        r.push(set_to("endpoint", &t)?);
    }
    r.extend(user_rules(&ep.relabelings)?);
    r.extend(op.rules.iter().cloned());
    Ok(Job {
        scrape,
        target_rules: r,
        metric_rules: user_rules(&ep.metric_relabelings)?,
        namespaces: m.target_namespaces(),
    })
}

/// `targetPort` (deprecated): a name keeps the container port name, a number the number.
fn push_target_port(r: &mut Vec<Rule>, t: &super::monitor::IntOrString) -> Result<(), String> {
    use super::monitor::IntOrString;
    match t {
        IntOrString::Str(s) if !s.is_empty() => r.push(rule(
            &["__meta_kubernetes_pod_container_port_name"],
            "keep",
            Some(s),
            None,
            None,
        )?),
        IntOrString::Int(n) if *n != 0 => r.push(rule(
            &["__meta_kubernetes_pod_container_port_number"],
            "keep",
            Some(&n.to_string()),
            None,
            None,
        )?),
        _ => {}
    }
    Ok(())
}
