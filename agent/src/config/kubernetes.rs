//! The evaluators of the Kubernetes components: `discovery.kubernetes` (Prometheus'
//! kubernetes_sd with Alloy's names: `role`, `api_server`, `kubeconfig_file`, `namespaces {}`,
//! `selectors {}`, `attach_metadata {}` and the client settings) and
//! `prometheus.operator.podmonitors` / `servicemonitors` (`forward_to`, `namespaces`,
//! `kubernetes_role`, `client {}`, `selector {}`, `rule {}`, `scrape {}`, `clustering {}`).
//! The rules of Prometheus' config check apply: client settings need `api_server`,
//! `own_namespace` only in-cluster, one selector per role and only the roles a role watches.

use super::client::{client_settings, Headers, CLIENT_ATTRS, CLIENT_BLOCKS};
use super::error::ConfigError;
use super::eval::{RefCx, KIND_KUBERNETES};
use super::fields::{Cx, Fields};
use super::model::*;
use super::rules;
use super::syntax::Block;
use crate::http_client::ClientSettings;

/// `api_server`, `kubeconfig_file` and the client settings, read from the fields `f` of
/// `block`.
fn api_config(
    cx: &Cx,
    block: &Block,
    f: &Fields,
    what: &str,
) -> Result<KubernetesApiConfig, ConfigError> {
    let mut api = KubernetesApiConfig::default();
    if let Some(e) = f.get("api_server") {
        let url = cx.string(e)?;
        let ok = (url.starts_with("http://") || url.starts_with("https://"))
            && url.parse::<http::Uri>().is_ok();
        if !ok {
            return Err(cx.err(
                e.pos,
                format!(
                    "invalid api_server {url:?}; expected a URL like \"https://10.0.0.1:6443\""
                ),
            ));
        }
        api.api_server = Some(url);
    }
    if let Some(e) = f.get("kubeconfig_file") {
        if api.api_server.is_some() {
            return Err(cx.err(
                e.pos,
                format!("{what} sets both api_server and kubeconfig_file; expected at most one"),
            ));
        }
        api.kubeconfig_file = Some(cx.string(e)?).filter(|s| !s.is_empty());
    }
    api.client = client_settings(cx, block, f, what, Headers::Plain("http_headers"))?;
    if api.client != ClientSettings::default() && api.api_server.is_none() {
        return Err(cx.err(
            block.pos,
            format!("{what} has client settings but no api_server; to use custom client settings set api_server explicitly (in-cluster and kubeconfig configurations bring their own)"),
        ));
    }
    if let Some(e) = f.get("proxy_url") {
        return Err(cx.err(
            e.pos,
            "proxy_url is not supported for the Kubernetes API; expected a direct connection",
        ));
    }
    Ok(api)
}

fn api_attrs(own: &[&'static str]) -> Vec<&'static str> {
    own.iter()
        .copied()
        .chain(["api_server", "kubeconfig_file", "http_headers"])
        .chain(CLIENT_ATTRS.iter().copied())
        .collect()
}

/// Checks a label selector's syntax: comma-separated `k`, `!k`, `k=v`, `k==v`, `k!=v`,
/// `k in (a,b)`, `k notin (a,b)`.
pub(super) fn check_label_selector(s: &str) -> Result<(), String> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced parentheses".into());
    }
    terms.push(&s[start..]);
    if s.trim().is_empty() {
        return Ok(());
    }
    let key_ok = |k: &str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    };
    for term in terms {
        let t = term.trim();
        let ok = if let Some(k) = t.strip_prefix('!') {
            key_ok(k.trim())
        } else if let Some((k, rest)) = t.split_once(" notin ").or_else(|| t.split_once(" in ")) {
            let rest = rest.trim();
            key_ok(k.trim()) && rest.starts_with('(') && rest.ends_with(')')
        } else if let Some((k, _)) = t
            .split_once("!=")
            .or_else(|| t.split_once("=="))
            .or_else(|| t.split_once('='))
        {
            key_ok(k.trim())
        } else {
            key_ok(t)
        };
        if !ok {
            return Err(format!("invalid term {t:?}"));
        }
    }
    Ok(())
}

/// Checks a field selector: comma-separated `field=value`, `field==value`, `field!=value`.
pub(super) fn check_field_selector(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Ok(());
    }
    for term in s.split(',') {
        let ok = term
            .split_once('=')
            .is_some_and(|(k, _)| !k.trim_end_matches('!').trim().is_empty());
        if !ok {
            return Err(format!(
                "invalid term {term:?}; expected field=value or field!=value"
            ));
        }
    }
    Ok(())
}

impl RefCx<'_> {
    pub(super) fn kubernetes(
        &self,
        block: &Block,
        name: &str,
    ) -> Result<KubernetesDiscoveryConfig, ConfigError> {
        let cx = &self.cx;
        let what = format!("{KIND_KUBERNETES} \"{name}\"");
        let blocks: Vec<&str> = ["namespaces", "selectors", "attach_metadata"]
            .into_iter()
            .chain(CLIENT_BLOCKS.iter().copied())
            .collect();
        let f = Fields::new(cx, &block.body, &what, &api_attrs(&["role"]), &blocks)?;
        let role_expr = f.required(cx, block, &what, "role")?;
        let role_name = cx.string(role_expr)?;
        let role = KubernetesRole::parse(&role_name).ok_or_else(|| {
            cx.err(
                role_expr.pos,
                format!("invalid role {role_name:?}; expected one of: pod, service, endpoints, endpointslice, node, ingress"),
            )
        })?;
        let api = api_config(cx, block, &f, &what)?;
        let mut c = KubernetesDiscoveryConfig {
            name: name.to_string(),
            role,
            api,
            namespaces: Vec::new(),
            own_namespace: false,
            selectors: Vec::new(),
            attach_node_metadata: false,
        };
        if let Some(b) = f.single_block(cx, "namespaces", &what)? {
            let w = format!("namespaces block of {what}");
            let nf = Fields::new(cx, &b.body, &w, &["own_namespace", "names"], &[])?;
            if let Some(e) = nf.get("names") {
                c.namespaces = cx.string_list(e)?;
            }
            if let Some(e) = nf.get("own_namespace") {
                c.own_namespace = cx.bool(e)?;
                if c.own_namespace
                    && (c.api.api_server.is_some() || c.api.kubeconfig_file.is_some())
                {
                    return Err(cx.err(
                        e.pos,
                        "own_namespace needs the in-cluster configuration; it cannot be used with api_server or kubeconfig_file",
                    ));
                }
            }
        }
        for b in f.blocks.iter().filter(|b| b.name == "selectors") {
            let w = format!("selectors block of {what}");
            let sf = Fields::new(cx, &b.body, &w, &["role", "label", "field"], &[])?;
            let re = sf.required(cx, b, &w, "role")?;
            let rn = cx.string(re)?;
            let sel_role = KubernetesRole::parse(&rn)
                .filter(|r| role.allowed_selectors().contains(r))
                .ok_or_else(|| {
                    let allowed: Vec<&str> =
                        role.allowed_selectors().iter().map(|r| r.as_str()).collect();
                    cx.err(
                        re.pos,
                        format!(
                            "selector role {rn:?} cannot be used with role {:?}; expected one of: {}",
                            role.as_str(),
                            allowed.join(", ")
                        ),
                    )
                })?;
            if c.selector(sel_role).is_some() {
                return Err(cx.err(re.pos, format!("duplicated selector role {rn:?}")));
            }
            let mut sel = KubernetesSelector {
                role: sel_role,
                label: String::new(),
                field: String::new(),
            };
            if let Some(e) = sf.get("label") {
                sel.label = cx.string(e)?;
                check_label_selector(&sel.label)
                    .map_err(|m| cx.err(e.pos, format!("invalid label selector: {m}")))?;
            }
            if let Some(e) = sf.get("field") {
                sel.field = cx.string(e)?;
                check_field_selector(&sel.field)
                    .map_err(|m| cx.err(e.pos, format!("invalid field selector: {m}")))?;
            }
            c.selectors.push(sel);
        }
        if let Some(b) = f.single_block(cx, "attach_metadata", &what)? {
            let w = format!("attach_metadata block of {what}");
            let af = Fields::new(cx, &b.body, &w, &["node"], &[])?;
            if let Some(e) = af.get("node") {
                c.attach_node_metadata = cx.bool(e)?;
            }
        }
        Ok(c)
    }

    pub(super) fn operator(
        &self,
        block: &Block,
        name: &str,
        kind: MonitorKind,
    ) -> Result<OperatorConfig, ConfigError> {
        let cx = &self.cx;
        let what = format!("{} \"{name}\"", kind.component());
        let attrs: &[&str] = match kind {
            MonitorKind::PodMonitors => &["forward_to", "namespaces"],
            MonitorKind::ServiceMonitors => &["forward_to", "namespaces", "kubernetes_role"],
        };
        let f = Fields::new(
            cx,
            &block.body,
            &what,
            attrs,
            &["client", "selector", "rule", "scrape", "clustering"],
        )?;
        let forward_to = self.receivers(f.required(cx, block, &what, "forward_to")?)?;
        let namespaces = match f.get("namespaces") {
            Some(e) => cx.string_list(e)?,
            None => Vec::new(),
        };
        let mut endpoint_role = KubernetesRole::Endpoints;
        if let Some(e) = f.get("kubernetes_role") {
            let r = cx.string(e)?;
            endpoint_role = match r.as_str() {
                "endpoints" => KubernetesRole::Endpoints,
                "endpointslice" => KubernetesRole::EndpointSlice,
                _ => {
                    return Err(cx.err(
                        e.pos,
                        format!("invalid kubernetes_role {r:?}; expected \"endpoints\" or \"endpointslice\""),
                    ))
                }
            };
        }
        let api = match f.single_block(cx, "client", &what)? {
            Some(b) => {
                let w = format!("client block of {what}");
                let attrs = api_attrs(&[]);
                let cf = Fields::new(cx, &b.body, &w, &attrs, CLIENT_BLOCKS)?;
                api_config(cx, b, &cf, &w)?
            }
            None => KubernetesApiConfig::default(),
        };
        let mut selector = LabelSelectorConfig::default();
        if let Some(b) = f.single_block(cx, "selector", &what)? {
            let w = format!("selector block of {what}");
            let sf = Fields::new(cx, &b.body, &w, &["match_labels"], &["match_expression"])?;
            if let Some(e) = sf.get("match_labels") {
                selector.match_labels = cx.string_map(e, "label names to values")?;
            }
            for m in &sf.blocks {
                let mw = format!("match_expression block of {what}");
                let mf = Fields::new(cx, &m.body, &mw, &["key", "operator", "values"], &[])?;
                let key = cx.string(mf.required(cx, m, &mw, "key")?)?;
                let op_e = mf.required(cx, m, &mw, "operator")?;
                let op = cx.string(op_e)?;
                if !["In", "NotIn", "Exists", "DoesNotExist"].contains(&op.as_str()) {
                    return Err(cx.err(
                        op_e.pos,
                        format!(
                            "invalid operator {op:?}; expected In, NotIn, Exists or DoesNotExist"
                        ),
                    ));
                }
                let values = match mf.get("values") {
                    Some(e) => cx.string_list(e)?,
                    None => Vec::new(),
                };
                selector.match_expressions.push((key, op, values));
            }
        }
        let (mut interval, mut timeout) = (SCRAPE_INTERVAL_DEFAULT, SCRAPE_TIMEOUT_DEFAULT);
        if let Some(b) = f.single_block(cx, "scrape", &what)? {
            let w = format!("scrape block of {what}");
            let attrs = ["default_scrape_interval", "default_scrape_timeout"];
            let sf = Fields::new(cx, &b.body, &w, &attrs, &[])?;
            if let Some(e) = sf.get("default_scrape_interval") {
                interval = cx.positive_duration(e)?;
            }
            if let Some(e) = sf.get("default_scrape_timeout") {
                timeout = cx.positive_duration(e)?;
            }
        }
        let clustering_enabled = super::components::clustering_block(cx, &f, &what)?;
        Ok(OperatorConfig {
            name: name.to_string(),
            kind,
            forward_to,
            namespaces,
            api,
            selector,
            rules: rules::rule_blocks(cx, &f.blocks, &what)?,
            default_scrape_interval: interval,
            default_scrape_timeout: timeout,
            clustering_enabled,
            endpoint_role,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn load(src: &str) -> Result<Config, String> {
        Config::from_str(src, "k.alloy").map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_discovery_block_is_read() {
        let c = load(
            r#"discovery.kubernetes "pods" {
  role = "endpoints"
  api_server = "https://10.0.0.1:6443"
  bearer_token = "s3cret"
  namespaces { names = ["a", "b"] }
  selectors { role = "pod"  label = "app in (x,y),tier!=db"  field = "spec.nodeName=n1" }
  selectors { role = "service"  label = "team" }
  attach_metadata { node = true }
}
prometheus.scrape "s" {
  targets = discovery.kubernetes.pods.targets
  forward_to = []
}
"#,
        )
        .unwrap();
        let k = &c.kubernetes_discoveries[0];
        assert_eq!(k.role, KubernetesRole::Endpoints);
        assert_eq!(k.namespaces, ["a", "b"]);
        assert_eq!(
            k.selector(KubernetesRole::Pod).unwrap().field,
            "spec.nodeName=n1"
        );
        assert!(k.attach_node_metadata);
        assert!(k.api.client.bearer_token.is_some());
        assert_eq!(
            c.scrapes[0].targets,
            [TargetsSource::DiscoveryKubernetes("pods".into())]
        );
    }

    #[test]
    fn prometheus_config_rules_are_enforced_with_positions() {
        let cases = [
            (
                r#"discovery.kubernetes "a" { role = "pods" }"#,
                "k.alloy:1:35: invalid role \"pods\"",
            ),
            (
                r#"discovery.kubernetes "a" { role = "node"
  selectors { role = "pod" }
}"#,
                "k.alloy:2:22: selector role \"pod\" cannot be used with role \"node\"",
            ),
            (
                r#"discovery.kubernetes "a" { role = "pod"
  selectors { role = "pod" }
  selectors { role = "pod" }
}"#,
                "k.alloy:3:22: duplicated selector role",
            ),
            (
                r#"discovery.kubernetes "a" {
  role = "pod"
  bearer_token = "x"
}"#,
                "has client settings but no api_server",
            ),
            (
                r#"discovery.kubernetes "a" {
  role = "pod"
  kubeconfig_file = "/k"
  namespaces { own_namespace = true }
}"#,
                "k.alloy:4:32: own_namespace needs the in-cluster configuration",
            ),
            (
                r#"discovery.kubernetes "a" {
  role = "pod"
  selectors { role = "pod"  label = "app in (x" }
}"#,
                "invalid label selector",
            ),
            (
                r#"prometheus.operator.servicemonitors "m" {
  forward_to = []
  kubernetes_role = "pod"
}"#,
                "k.alloy:3:21: invalid kubernetes_role",
            ),
        ];
        for (src, want) in cases {
            let err = load(src).unwrap_err();
            assert!(err.contains(want), "{src}\n=> {err}\nwant {want}");
        }
    }

    #[test]
    fn an_operator_block_is_read() {
        let c = load(
            r#"prometheus.operator.podmonitors "pm" {
  forward_to = []
  namespaces = ["apps"]
  client { api_server = "http://127.0.0.1:1" }
  selector {
    match_labels = { team = "a" }
    match_expression { key = "tier"  operator = "In"  values = ["web"] }
  }
  scrape { default_scrape_interval = "5s" }
  clustering { enabled = true }
  rule { action = "drop"  source_labels = ["pod"]  regex = "x" }
}"#,
        )
        .unwrap();
        let o = &c.operators[0];
        assert_eq!(o.kind, MonitorKind::PodMonitors);
        assert_eq!(o.api.api_server.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(o.selector.match_expressions[0].0, "tier");
        assert_eq!(o.default_scrape_interval, std::time::Duration::from_secs(5));
        assert!(o.clustering_enabled);
        assert_eq!(o.rules.len(), 1);
    }
}

#[cfg(test)]
mod deploy_tests {
    use crate::config::{Config, KubernetesRole, TargetsSource};

    /// The configuration the Kubernetes manifests ship (deploy/base/config.alloy) loads, and
    /// scrapes the discovered pods with clustering.
    #[test]
    fn the_deployed_config_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/base/config.alloy");
        let c = Config::from_file(path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.kubernetes_discoveries[0].role, KubernetesRole::Pod);
        assert!(c.scrapes[0].clustering_enabled);
        assert_eq!(
            c.scrapes[0].targets,
            [TargetsSource::DiscoveryRelabel("pods".into())]
        );
        // Its rules keep annotated pods, on the annotated port, with namespace and pod.
        let pod = |name: &str, annotations: serde_json::Value| -> k8s_openapi::api::core::v1::Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "monitoring", "annotations": annotations},
                "spec": {"containers": [{"name": "agent", "ports": [
                    {"name": "http-metrics", "containerPort": 12345, "protocol": "TCP"},
                    {"name": "other", "containerPort": 7000, "protocol": "TCP"}]}]},
                "status": {"podIP": "10.0.0.9", "phase": "Running"}
            }))
            .unwrap()
        };
        let discovered: Vec<crate::discovery::Target> = [
            pod(
                "agent-0",
                serde_json::json!({"prometheus.io/scrape": "true", "prometheus.io/port": "12345"}),
            ),
            pod("quiet", serde_json::json!({})),
        ]
        .iter()
        .flat_map(|p| crate::kubernetes::roles::pod(p, None).into_targets())
        .collect();
        let out = crate::relabel::relabel_targets(discovered, &c.discovery_relabels[0].rules);
        assert_eq!(out.len(), 2, "{out:?}");
        for t in &out {
            assert_eq!(t.address(), "10.0.0.9:12345");
            assert_eq!(t.get("pod"), Some("agent-0"));
            assert_eq!(t.get("namespace"), Some("monitoring"));
        }
    }
}
