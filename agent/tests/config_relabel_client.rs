//! The configuration of this round's components and settings, through the public parser:
//! `discovery.relabel`, `prometheus.relabel`, the client settings blocks on
//! `prometheus.scrape` and remote_write endpoints, and function calls. Errors name
//! `file:line:col` and what was expected; secrets never show in Debug, the hash input or
//! errors.

use agent::config::{Config, Environment, Receiver, TargetsSource};
use agent::relabel::Action;

struct Env;

impl Environment for Env {
    fn var(&self, name: &str) -> Option<String> {
        (name == "MIMIR_PASSWORD").then(|| "hunter2-from-env".to_string())
    }
    fn hostname(&self) -> String {
        "node-a".into()
    }
}

fn load(src: &str) -> Result<Config, String> {
    Config::from_str_in(src, "agent.alloy", &Env).map_err(|e| e.to_string())
}

const REAL_WORLD: &str = r#"
discovery.file "nodes" { files = ["/etc/agent/nodes/*.json"] }
discovery.file "apps"  { files = ["/etc/agent/apps/*.yml"] }

discovery.relabel "prod" {
  targets = concat(discovery.file.nodes.targets, discovery.file.apps.targets)
  rule {
    source_labels = ["__meta_env"]
    regex         = "prod|staging"
    action        = "keep"
  }
  rule {
    target_label = "host"
    replacement  = constants.hostname
  }
}

prometheus.scrape "default" {
  targets    = discovery.relabel.prod.output
  forward_to = [prometheus.relabel.drop_go.receiver]
  scheme     = "https"
  bearer_token_file = "/var/run/secrets/token"
  tls_config {
    ca_file     = "/etc/agent/ca.pem"
    server_name = "metrics.internal"
    min_version = "TLS13"
  }
  clustering { enabled = true }
}

prometheus.relabel "drop_go" {
  forward_to = [prometheus.remote_write.cloud.receiver]
  rule {
    source_labels = ["__name__"]
    regex         = "go_.*"
    action        = "drop"
  }
}

prometheus.remote_write "cloud" {
  endpoint {
    url = "https://prometheus-prod.grafana.net/api/prom/push"
    basic_auth {
      username = "123456"
      password = sys.env("MIMIR_PASSWORD")
    }
    headers = { "X-Scope-OrgID" = "tenant-1" }
  }
  external_labels = { cluster = format("%s-%s", "eu", "west") }
}
"#;

#[test]
fn a_real_world_config_loads_with_relabels_client_settings_and_functions() {
    let c = load(REAL_WORLD).unwrap();
    let d = &c.discovery_relabels[0];
    assert_eq!(
        d.targets,
        vec![
            TargetsSource::DiscoveryFile("nodes".into()),
            TargetsSource::DiscoveryFile("apps".into())
        ]
    );
    assert_eq!(d.rules.len(), 2);
    assert_eq!(d.rules[0].action, Action::Keep);
    assert_eq!(d.rules[1].replacement, "node-a", "constants.hostname");
    let s = c.scrape("default").unwrap();
    assert_eq!(
        s.targets,
        vec![TargetsSource::DiscoveryRelabel("prod".into())]
    );
    assert_eq!(s.forward_to, vec![Receiver::Relabel("drop_go".into())]);
    assert_eq!(s.scheme, "https");
    assert_eq!(
        s.client.tls.server_name.as_deref(),
        Some("metrics.internal")
    );
    assert_eq!(
        s.client.bearer_token_file.as_deref(),
        Some("/var/run/secrets/token")
    );
    let m = &c.metric_relabels[0];
    assert_eq!(m.forward_to, vec![Receiver::RemoteWrite("cloud".into())]);
    assert_eq!(m.max_cache_size, 100_000, "Alloy's default");
    let e = &c.remote_writes[0].endpoints[0];
    let auth = e.client.basic_auth.as_ref().unwrap();
    assert_eq!(auth.password.as_ref().unwrap().expose(), "hunter2-from-env");
    assert_eq!(e.client.headers["X-Scope-OrgID"].expose(), "tenant-1");
    assert_eq!(c.remote_writes[0].external_labels["cluster"], "eu-west");
}

#[test]
fn secrets_stay_out_of_debug_output_and_the_hash_input_but_change_the_hash() {
    let c = load(REAL_WORLD).unwrap();
    let debug = format!("{c:?}");
    let json = serde_json::to_string(&c).unwrap();
    for shown in [&debug, &json] {
        assert!(!shown.contains("hunter2"), "a secret is shown: {shown}");
        assert!(!shown.contains("tenant-1"), "header values are secrets too");
    }
    let other = load(&REAL_WORLD.replace("sys.env(\"MIMIR_PASSWORD\")", "\"another\"")).unwrap();
    assert_ne!(
        c.config_hash(),
        other.config_hash(),
        "a new password is a config change"
    );
}

#[test]
fn relabel_components_are_checked() {
    let err = |src: &str| load(src).unwrap_err();
    assert_eq!(
        err("discovery.relabel \"a\" {\n  targets = discovery.relabel.b.output\n}\ndiscovery.relabel \"b\" {\n  targets = discovery.relabel.a.output\n}\n"),
        "agent.alloy:1:1: components form a loop: discovery.relabel.a -> discovery.relabel.b -> discovery.relabel.a"
    );
    assert_eq!(
        err("prometheus.relabel \"a\" {\n  forward_to = [prometheus.relabel.a.receiver]\n}\n"),
        "agent.alloy:1:1: components form a loop: prometheus.relabel.a -> prometheus.relabel.a"
    );
    assert_eq!(
        err("discovery.relabel \"a\" {\n  targets = []\n  rule {\n    action = \"explode\"\n  }\n}\n"),
        "agent.alloy:4:14: unknown relabel action \"explode\"; expected one of: replace, keep, drop, keepequal, dropequal, hashmod, labelmap, labeldrop, labelkeep, lowercase, uppercase"
    );
    let e = err("discovery.relabel \"a\" {\n  targets = []\n  rule {\n    action = \"hashmod\"\n    source_labels = [\"x\"]\n    target_label = \"y\"\n  }\n}\n");
    assert!(
        e.starts_with("agent.alloy:3:3: invalid rule in discovery.relabel \"a\": "),
        "{e}"
    );
    assert!(e.contains("modulus"), "{e}");
    let e = err(
        "discovery.relabel \"a\" {\n  targets = []\n  rule {\n    regex = \"(unclosed\"\n  }\n}\n",
    );
    assert!(
        e.starts_with("agent.alloy:4:13: invalid rule in discovery.relabel \"a\""),
        "{e}"
    );
    assert_eq!(
        err("prometheus.scrape \"s\" {\n  targets = discovery.relabel.a.rules\n  forward_to = []\n}\ndiscovery.relabel \"a\" { targets = [] }\n"),
        "agent.alloy:2:13: expected a list of targets, got `discovery.relabel.a.rules`, which is a list of relabel rules"
    );
    assert_eq!(
        err("prometheus.scrape \"s\" {\n  targets = []\n  forward_to = [prometheus.relabel.r.output]\n}\nprometheus.relabel \"r\" { forward_to = [] }\n"),
        "agent.alloy:3:17: `prometheus.relabel` has no export `output`; expected `receiver` or `rules`"
    );
}

#[test]
fn client_settings_errors_point_at_the_setting() {
    let scrape = |inner: &str| {
        load(&format!(
            "prometheus.scrape \"s\" {{\n  targets = []\n  forward_to = []\n{inner}}}\n"
        ))
        .unwrap_err()
    };
    let e = scrape(
        "  bearer_token = \"t\"\n  basic_auth {\n    username = \"u\"\n    password = \"p\"\n  }\n",
    );
    assert!(e.starts_with("agent.alloy:"), "{e}");
    assert!(
        e.contains("basic_auth") && e.contains("bearer_token"),
        "names both: {e}"
    );
    assert!(
        !e.contains("\"p\"") && !e.contains(" t "),
        "no secret in the error: {e}"
    );
    let e = scrape("  basic_auth {\n    username = \"u\"\n    password = \"p\"\n    password_file = \"/f\"\n  }\n");
    assert!(e.starts_with("agent.alloy:"), "{e}");
    assert!(e.contains("password_file"), "{e}");
    assert_eq!(
        scrape("  tls_config {\n    min_version = \"SSL3\"\n  }\n"),
        "agent.alloy:5:19: tls_config.min_version: unknown TLS version \"SSL3\" (expected one of TLS10, TLS11, TLS12, TLS13)"
    );
    let e = scrape("  oauth2 {\n    client_id = \"x\"\n  }\n");
    assert!(
        e.starts_with("agent.alloy:4:3: oauth2 in prometheus.scrape \"s\" is not supported yet"),
        "{e}"
    );
    assert_eq!(
        scrape("  http_headers = { \"bad header\" = [\"v\"] }\n"),
        "agent.alloy:4:18: invalid HTTP header name \"bad header\""
    );
}

#[test]
fn endpoint_names_never_show_the_url_password() {
    let c = load("prometheus.remote_write \"w\" {\n  endpoint { url = \"https://user:pa55word@mimir.example.com/api/v1/push\" }\n}\n").unwrap();
    assert_eq!(
        c.remote_writes[0].endpoints[0].name,
        "https://mimir.example.com/api/v1/push"
    );
}
