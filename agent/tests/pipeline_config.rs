//! The Alloy-syntax config subset: what valid files mean (defaults, references), and that
//! every kind of mistake is reported with `file:line:col` and what was expected.

use std::time::Duration;

use agent::config::{Config, Receiver, TargetsSource};
use agent::discovery::Target;

const FULL: &str = r#"
// Targets from files, scraped by whichever node owns them.
discovery.file "nodes" {
  files            = ["/etc/agent/targets/*.json", "/etc/agent/more.yaml"]
  refresh_interval = "30s"
}

prometheus.scrape "default" {
  targets    = discovery.file.nodes.targets
  forward_to = [prometheus.remote_write.main.receiver, prometheus.remote_write.backup.receiver]
  job_name        = "node"
  scrape_interval = "15s"
  scrape_timeout  = "5s"
  metrics_path    = "/metrics"
  scheme          = "http"
  clustering { enabled = true }
}

/* A static target list,
   with labels. */
prometheus.scrape "static" {
  targets = [
    {"__address__" = "127.0.0.1:9100", "env" = "prod"},
    {__address__ = "127.0.0.1:9101", __metrics_path__ = "/m"},
  ]
  forward_to = [prometheus.remote_write.main.receiver]
}

prometheus.remote_write "main" {
  endpoint {
    url = "http://127.0.0.1:9090/api/v1/write"
    queue_config {
      max_samples_per_send = 500
      batch_send_deadline  = "1s"
      min_shards           = 2
      max_shards           = 10
    }
  }
  external_labels = { cluster = "eu1" }
  wal {
    truncate_frequency = "1h"
    min_keepalive_time = "1m"
    max_keepalive_time = "4h"
    max_size           = "512MiB"
  }
}

prometheus.remote_write "backup" {
  endpoint { url = "http://127.0.0.1:9091/api/v1/write" }
}
"#;

fn err(src: &str) -> String {
    Config::from_str(src, "agent.alloy")
        .expect_err("config should be rejected")
        .to_string()
}

#[test]
fn a_full_config_parses_with_references_in_any_order() {
    let c = Config::from_str(FULL, "agent.alloy").unwrap();
    assert_eq!(c.scrapes.len(), 2);
    let d = c.scrape("default").unwrap();
    assert_eq!(
        d.targets,
        vec![TargetsSource::DiscoveryFile("nodes".into())]
    );
    assert_eq!(
        d.forward_to,
        vec![
            Receiver::RemoteWrite("main".into()),
            Receiver::RemoteWrite("backup".into())
        ]
    );
    assert_eq!(d.job_name, "node");
    assert_eq!(d.scrape_interval, Duration::from_secs(15));
    assert_eq!(d.scrape_timeout, Duration::from_secs(5));
    assert!(d.clustering_enabled);

    let s = c.scrape("static").unwrap();
    assert_eq!(s.targets.len(), 2);
    assert_eq!(
        s.targets[0],
        TargetsSource::Static(Target::from_labels([
            ("__address__", "127.0.0.1:9100"),
            ("env", "prod")
        ]))
    );

    let f = c.file_discovery("nodes").unwrap();
    assert_eq!(f.files.len(), 2);
    assert_eq!(f.refresh_interval, Duration::from_secs(30));

    let rw = c.remote_write("main").unwrap();
    assert_eq!(rw.endpoints[0].url, "http://127.0.0.1:9090/api/v1/write");
    assert_eq!(rw.endpoints[0].queue.max_samples_per_send, 500);
    assert_eq!(
        rw.endpoints[0].queue.batch_send_deadline,
        Duration::from_secs(1)
    );
    assert_eq!(rw.external_labels.get("cluster").unwrap(), "eu1");
    assert_eq!(
        (
            rw.endpoints[0].queue.min_shards,
            rw.endpoints[0].queue.max_shards
        ),
        (2, 10)
    );
    assert_eq!(rw.wal.truncate_frequency, Duration::from_secs(3600));
    assert_eq!(rw.wal.min_keepalive_time, Duration::from_secs(60));
    assert_eq!(rw.wal.max_keepalive_time, Duration::from_secs(4 * 3600));
    assert_eq!(rw.wal.max_size_bytes, 512 << 20);
}

#[test]
fn wal_and_shard_bounds_are_checked() {
    let rw = |inner: &str| {
        format!("prometheus.remote_write \"w\" {{\n  endpoint {{ url = \"http://h:9090/api/v1/write\" }}\n  {inner}\n}}")
    };
    let e = err(&rw(
        r#"wal { min_keepalive_time = "2h" max_keepalive_time = "1h" }"#,
    ));
    assert!(
        e.contains("min_keepalive_time is greater than max_keepalive_time"),
        "{e}"
    );
    let e = err(&rw(r#"wal { max_size = "lots" }"#));
    assert!(e.contains("invalid size \"lots\""), "{e}");
    let e = err(&rw(r#"wal { truncate_frequncy = "1h" }"#));
    assert!(e.contains("truncate_frequncy"), "{e}");
    let e = err(&rw("").replace(
        "write\" }",
        "write\"\n queue_config { min_shards = 5\n max_shards = 2 } }",
    ));
    assert!(e.contains("min_shards is greater than max_shards"), "{e}");
}

#[test]
fn defaults_follow_prometheus_and_alloy() {
    let c = Config::from_str(
        r#"prometheus.scrape "x" {
             targets = [{"__address__" = "h:1"}]
             forward_to = []
           }
           discovery.file "f" { files = ["a.json"] }
           prometheus.remote_write "w" { endpoint { url = "http://h:9090/api/v1/write" } }"#,
        "t",
    )
    .unwrap();
    let s = &c.scrapes[0];
    assert_eq!(s.job_name, "prometheus.scrape.x");
    assert_eq!(s.scrape_interval, Duration::from_secs(60));
    assert_eq!(s.scrape_timeout, Duration::from_secs(10));
    assert_eq!(s.metrics_path, "/metrics");
    assert_eq!(s.scheme, "http");
    assert!(!s.honor_labels);
    assert!(!s.clustering_enabled);
    assert_eq!(s.body_size_limit_bytes, 64 << 20);
    assert_eq!(
        c.file_discoveries[0].refresh_interval,
        Duration::from_secs(300)
    );
    let q = &c.remote_writes[0].endpoints[0].queue;
    assert_eq!(q.max_samples_per_send, 2000);
    assert_eq!(q.batch_send_deadline, Duration::from_secs(5));
    assert_eq!(q.min_backoff, Duration::from_millis(30));
    assert_eq!(q.max_backoff, Duration::from_secs(5));
    assert_eq!((q.capacity, q.min_shards, q.max_shards), (10_000, 1, 50));
    let w = &c.remote_writes[0].wal;
    assert_eq!(w.truncate_frequency, Duration::from_secs(2 * 3600));
    assert_eq!(w.min_keepalive_time, Duration::from_secs(5 * 60));
    assert_eq!(w.max_keepalive_time, Duration::from_secs(8 * 3600));
}

#[test]
fn config_hash_ignores_formatting_and_order_but_not_settings() {
    let a = Config::from_str(FULL, "a").unwrap();
    let mut blocks: Vec<&str> = FULL.split("\n\n").collect();
    blocks.reverse();
    let reordered = blocks.join("\n\n").replace("  ", "    ");
    let b = Config::from_str(&reordered, "b").unwrap();
    assert_eq!(a.config_hash(), b.config_hash());
    let changed = Config::from_str(&FULL.replace("\"15s\"", "\"16s\""), "c").unwrap();
    assert_ne!(a.config_hash(), changed.config_hash());
    assert_eq!(a.config_hash_hex().len(), 16);
    // Stable across runs and platforms: a change here is a drift for users, who see it
    // once per upgrade that adds settings (new components changed it last).
    let tiny = Config::from_str("", "t").unwrap();
    insta::assert_snapshot!(tiny.config_hash_hex(), @"8fa52ba5ba15df23");
}

#[test]
fn from_file_reports_missing_files_and_uses_the_path_in_errors() {
    let e = Config::from_file("/nonexistent/agent.alloy").unwrap_err();
    assert!(e
        .to_string()
        .starts_with("/nonexistent/agent.alloy: cannot read config file"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.alloy");
    std::fs::write(&path, "\n  bogus.block \"x\" {}\n").unwrap();
    let e = Config::from_file(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:2:3: unknown component `bogus.block`; expected one of: prometheus.scrape, discovery.file, discovery.kubernetes, discovery.relabel, prometheus.relabel, prometheus.remote_write, prometheus.operator.podmonitors, prometheus.operator.servicemonitors, pyroscope.scrape, pyroscope.write",
            path.display()
        )
    );
}

#[test]
fn unknown_blocks_and_attributes_are_errors() {
    insta::assert_snapshot!(err("loki.write \"x\" {}"), @"agent.alloy:1:1: unknown component `loki.write`; expected one of: prometheus.scrape, discovery.file, discovery.kubernetes, discovery.relabel, prometheus.relabel, prometheus.remote_write, prometheus.operator.podmonitors, prometheus.operator.servicemonitors, pyroscope.scrape, pyroscope.write");
    insta::assert_snapshot!(err("discovery.file \"f\" {\n  files = [\"a.json\"]\n  refresh = \"1m\"\n}"), @"agent.alloy:3:3: unknown attribute `refresh` in discovery.file \"f\"; expected one of: files, refresh_interval");
    insta::assert_snapshot!(err("prometheus.scrape \"s\" {\n targets = []\n forward_to = []\n sigv4 {}\n}"), @"agent.alloy:4:2: unknown block `sigv4` in prometheus.scrape \"s\"; expected one of: clustering, basic_auth, authorization, tls_config, oauth2");
    insta::assert_snapshot!(err("prometheus.scrape \"s\" {\n targets = []\n forward_to = []\n clustering { enable = true }\n}"), @"agent.alloy:4:15: unknown attribute `enable` in clustering block of prometheus.scrape \"s\"; expected one of: enabled");
    insta::assert_snapshot!(err("x = 1"), @"agent.alloy:1:1: unexpected attribute `x` at top level; expected a component block (prometheus.scrape, discovery.file, discovery.kubernetes, discovery.relabel, prometheus.relabel, prometheus.remote_write, prometheus.operator.podmonitors, prometheus.operator.servicemonitors, pyroscope.scrape, pyroscope.write)");
    insta::assert_snapshot!(err("prometheus.scrape {\n}"), @r#"agent.alloy:1:1: component `prometheus.scrape` needs a label; expected `prometheus.scrape "NAME" { ... }`"#);
}

#[test]
fn type_errors_say_what_was_expected() {
    insta::assert_snapshot!(err("prometheus.scrape \"s\" {\n targets = \"h:1\"\n forward_to = []\n}"), @"agent.alloy:2:12: expected list of target objects or a reference like discovery.file.NAME.targets, got string");
    insta::assert_snapshot!(err("prometheus.scrape \"s\" {\n targets = [\"h:1\"]\n forward_to = []\n}"), @r#"agent.alloy:2:13: expected target object like {"__address__" = "host:port"}, got string"#);
    insta::assert_snapshot!(err("prometheus.scrape \"s\" {\n targets = [{__address__ = 1}]\n forward_to = []\n}"), @"agent.alloy:2:28: expected string, got number");
    insta::assert_snapshot!(err("prometheus.scrape \"s\" {\n targets = []\n forward_to = []\n scrape_interval = 15\n}"), @r#"agent.alloy:4:20: expected duration string like "15s", got number"#);
    insta::assert_snapshot!(err("prometheus.scrape \"s\" {\n targets = []\n forward_to = []\n scrape_interval = \"15 seconds\"\n}"), @r#"agent.alloy:4:20: invalid duration "15 seconds"; expected a duration like "15s", "1m30s" or "500ms""#);
    insta::assert_snapshot!(err("prometheus.scrape \"s\" {\n targets = []\n forward_to = []\n clustering { enabled = \"yes\" }\n}"), @"agent.alloy:4:25: expected bool, got string");
    insta::assert_snapshot!(err("prometheus.scrape \"s\" {\n targets = [{env = \"x\"}]\n forward_to = []\n}"), @r#"agent.alloy:2:13: target has no "__address__"; expected {"__address__" = "host:port", ...}"#);
    insta::assert_snapshot!(err("prometheus.scrape \"s\" {\n targets = []\n forward_to = []\n scrape_interval = \"5s\"\n}"), @"agent.alloy:4:20: scrape_timeout (10s) is greater than scrape_interval (5s); expected scrape_timeout <= scrape_interval");
    insta::assert_snapshot!(err("prometheus.scrape \"s\" {\n targets = []\n forward_to = []\n scheme = \"ftp\"\n}"), @r#"agent.alloy:4:11: unsupported scheme "ftp"; expected "http" or "https""#);
    insta::assert_snapshot!(err("prometheus.remote_write \"w\" {\n endpoint { url = \"localhost:9090\" }\n}"), @r#"agent.alloy:2:19: invalid url "localhost:9090"; expected an http:// or https:// URL such as "https://mimir.example.com/api/v1/push""#);
    insta::assert_snapshot!(err("discovery.file \"f\" { files = [\"targets.txt\"] }"), @r#"agent.alloy:1:31: invalid file "targets.txt"; expected a path ending in .json, .yml or .yaml"#);
}

#[test]
fn references_are_checked() {
    insta::assert_snapshot!(err("prometheus.scrape \"s\" {\n targets = discovery.file.nope.targets\n forward_to = []\n}"), @"agent.alloy:2:12: reference `discovery.file.nope.targets` points at `discovery.file.nope`, which does not exist (no discovery.file component is defined)");
    insta::assert_snapshot!(err("discovery.file \"a\" { files = [\"a.json\"] }\nprometheus.scrape \"s\" {\n targets = discovery.file.b.targets\n forward_to = []\n}"), @"agent.alloy:3:12: reference `discovery.file.b.targets` points at `discovery.file.b`, which does not exist (defined: discovery.file.a)");
    insta::assert_snapshot!(err("discovery.file \"a\" { files = [\"a.json\"] }\nprometheus.scrape \"s\" {\n targets = discovery.file.a.output\n forward_to = []\n}"), @"agent.alloy:3:12: `discovery.file` has no export `output`; expected `targets`");
    insta::assert_snapshot!(err("prometheus.remote_write \"w\" { endpoint { url = \"http://h:1/w\" } }\nprometheus.scrape \"s\" {\n targets = prometheus.remote_write.w.receiver\n forward_to = []\n}"), @"agent.alloy:3:12: expected a list of targets, got `prometheus.remote_write.w.receiver`, which is a receiver");
    insta::assert_snapshot!(err("prometheus.scrape \"s\" {\n targets = []\n forward_to = [prometheus.remote_write.gone.receiver]\n}"), @"agent.alloy:3:16: reference `prometheus.remote_write.gone.receiver` points at `prometheus.remote_write.gone`, which does not exist (no prometheus.remote_write component is defined)");
    insta::assert_snapshot!(err("prometheus.scrape \"s\" {\n targets = []\n forward_to = [loki.write.x.receiver]\n}"), @"agent.alloy:3:16: unknown reference `loki.write.x.receiver`; expected a component export such as `prometheus.remote_write.NAME.receiver`");
    insta::assert_snapshot!(err("prometheus.scrape \"s\" {\n targets = to_lower(\"X\")\n forward_to = []\n}"), @"agent.alloy:2:12: expected list of target objects or a reference like discovery.file.NAME.targets, got string");
}

#[test]
fn duplicates_are_errors() {
    insta::assert_snapshot!(err("discovery.file \"a\" { files = [] }\n\ndiscovery.file \"a\" { files = [] }"), @"agent.alloy:3:1: duplicate component `discovery.file.a`; first defined at agent.alloy:1:1");
    insta::assert_snapshot!(err("discovery.file \"a\" {\n files = []\n files = []\n}"), @r#"agent.alloy:3:2: attribute `files` is set twice in discovery.file "a"; first set at agent.alloy:2:2"#);
    insta::assert_snapshot!(err("prometheus.scrape \"s\" {\n targets = [{__address__ = \"a:1\", __address__ = \"b:1\"}]\n forward_to = []\n}"), @r#"agent.alloy:2:35: duplicate object key "__address__""#);
    insta::assert_snapshot!(err("prometheus.scrape \"s\" {\n targets = []\n forward_to = []\n clustering { enabled = true }\n clustering { enabled = false }\n}"), @r#"agent.alloy:5:2: block `clustering` appears twice in prometheus.scrape "s"; expected at most one"#);
}

#[test]
fn missing_required_attributes_and_syntax_errors() {
    insta::assert_snapshot!(err("prometheus.scrape \"s\" {\n targets = []\n}"), @r#"agent.alloy:1:1: missing required attribute `forward_to` in prometheus.scrape "s""#);
    insta::assert_snapshot!(err("prometheus.remote_write \"w\" {}"), @r#"agent.alloy:1:1: prometheus.remote_write "w" has no endpoint; expected `endpoint { url = "http://host:9090/api/v1/write" }`"#);
    insta::assert_snapshot!(err("prometheus.scrape \"s\" {\n targets = [\n"), @"agent.alloy:3:1: expected a value (string, number, bool, list, object or reference), found end of file");
    insta::assert_snapshot!(err("prometheus.scrape \"s\" {\n targets = []"), @"agent.alloy:1:23: block is never closed; expected `}` before end of file");
    insta::assert_snapshot!(err("/* never closed\nprometheus.scrape \"s\" {}"), @"agent.alloy:1:1: unterminated block comment; expected `*/`");
    insta::assert_snapshot!(err("prometheus.scrape \"s\" {\n job_name = \"a\" \"b\"\n}"), @r#"agent.alloy:2:17: expected an attribute, a block or `}`, found string "b""#);
    insta::assert_snapshot!(err("prometheus.scrape \"bad-name\" {}"), @r#"agent.alloy:1:19: invalid component label "bad-name"; expected letters, digits and underscores, not starting with a digit"#);
}
