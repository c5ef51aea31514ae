//! `discovery.relabel` inside the running pipeline: the scrape component gets the relabeled
//! targets, targets a rule drops or leaves without `__address__` are not sharded (no node
//! owns them), and a reload with other rules re-evaluates ownership.

use agent::config::Config;
use agent::pipeline::Pipeline;
use cluster::NodeState;

/// 20 static targets on a closed port: 10 `env=prod`, 5 `env=dev`, 5 prod ones whose
/// address the second rule empties (`drop_me`), so only 10 should be sharded.
fn config(keep: &str) -> Config {
    let mut targets = Vec::new();
    for i in 0..10 {
        targets.push(format!(
            "{{__address__ = \"127.0.0.1:1\", env = \"prod\", i = \"{i}\"}}"
        ));
    }
    for i in 0..5 {
        targets.push(format!(
            "{{__address__ = \"127.0.0.1:1\", env = \"dev\", i = \"d{i}\"}}"
        ));
        targets.push(format!(
            "{{__address__ = \"127.0.0.1:1\", env = \"prod\", i = \"x{i}\", drop_me = \"yes\"}}"
        ));
    }
    let src = format!(
        r#"discovery.relabel "only" {{
  targets = [{}]
  rule {{
    source_labels = ["env"]
    regex         = "{keep}"
    action        = "keep"
  }}
  rule {{
    source_labels = ["drop_me"]
    regex         = "yes"
    target_label  = "__address__"
    replacement   = ""
  }}
}}
prometheus.scrape "s" {{
  targets    = discovery.relabel.only.output
  forward_to = []
  clustering {{ enabled = true }}
}}
"#,
        targets.join(", ")
    );
    Config::from_str(&src, "t.alloy").unwrap()
}

#[tokio::test]
async fn relabeled_targets_are_sharded_and_dropped_ones_are_not() {
    let live = vec![
        ("a".to_string(), NodeState::Participant),
        ("b".to_string(), NodeState::Participant),
    ];
    let storage = tempfile::tempdir().unwrap();
    let a = Pipeline::start(config("prod"), "a", storage.path()).unwrap();
    let b = Pipeline::start(config("prod"), "b", storage.path()).unwrap();
    a.set_members(&live);
    b.set_members(&live);
    assert_eq!(
        a.stats().scrapes[0].targets,
        10,
        "5 dev dropped, 5 without __address__ left out"
    );
    let (mine, theirs) = (a.owned_targets("s"), b.owned_targets("s"));
    assert_eq!(mine.len() + theirs.len(), 10, "each kept target owned once");
    for t in mine.iter().chain(&theirs) {
        assert_eq!(t.get("env"), Some("prod"));
        assert_eq!(t.get("drop_me"), None);
    }

    a.apply(config("prod|dev"));
    assert_eq!(
        a.stats().scrapes[0].targets,
        15,
        "a reload with other rules re-evaluates"
    );
}

/// A relabel chain `prometheus.relabel.first -> prometheus.relabel.second -> remote_write`,
/// with the given rule regex on `second` and remote-write URL.
fn chain(regex: &str, url: &str, interval: &str) -> Config {
    let src = format!(
        r#"prometheus.scrape "s" {{
  targets         = [{{__address__ = "127.0.0.1:1"}}]
  forward_to      = [prometheus.relabel.first.receiver]
  scrape_interval = "{interval}"
  scrape_timeout  = "1s"
}}
prometheus.relabel "first" {{
  forward_to = [prometheus.relabel.second.receiver]
  rule {{
    source_labels = ["__name__"]
    regex         = "up"
    action        = "keep"
  }}
}}
prometheus.relabel "second" {{
  forward_to = [prometheus.remote_write.w.receiver]
  rule {{
    source_labels = ["__name__"]
    regex         = "{regex}"
    action        = "keep"
  }}
}}
prometheus.remote_write "w" {{
  endpoint {{ url = "{url}" }}
}}
"#
    );
    Config::from_str(&src, "t.alloy").unwrap()
}

#[tokio::test]
async fn a_reload_keeps_unchanged_relabel_components_and_rebuilds_what_changed() {
    let storage = tempfile::tempdir().unwrap();
    let p = Pipeline::start(
        chain("up", "http://127.0.0.1:1/w", "10s"),
        "a",
        storage.path(),
    )
    .unwrap();
    let running = |name: &str| {
        p.stats()
            .metric_relabels
            .into_iter()
            .find(|c| c.component_id == format!("prometheus.relabel.{name}"))
            .unwrap()
            .metrics
    };
    let (first, second) = (running("first"), running("second"));

    p.apply(chain("up", "http://127.0.0.1:1/w", "20s"));
    assert!(
        std::sync::Arc::ptr_eq(&first, &running("first")),
        "scrape change only: kept"
    );
    assert!(std::sync::Arc::ptr_eq(&second, &running("second")));

    p.apply(chain("up|down", "http://127.0.0.1:1/w", "20s"));
    assert!(
        !std::sync::Arc::ptr_eq(&second, &running("second")),
        "its rule changed"
    );
    assert!(
        !std::sync::Arc::ptr_eq(&first, &running("first")),
        "it forwards to a new component"
    );
    let (first, second) = (running("first"), running("second"));

    p.apply(chain("up|down", "http://127.0.0.1:2/w", "20s"));
    assert!(
        !std::sync::Arc::ptr_eq(&second, &running("second")),
        "its remote_write restarted"
    );
    assert!(!std::sync::Arc::ptr_eq(&first, &running("first")));
}
