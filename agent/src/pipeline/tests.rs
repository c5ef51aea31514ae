use super::*;

/// `n` static targets on a closed port (scrapes fail fast; only ownership matters here).
fn config(n: usize, clustering: bool) -> Config {
    let targets: Vec<String> = (0..n)
        .map(|i| format!("{{__address__ = \"127.0.0.1:1\", shard = \"t{i}\"}}"))
        .collect();
    let src = format!(
        "prometheus.scrape \"s\" {{\n  targets = [{}]\n  forward_to = []\n  clustering {{ enabled = {clustering} }}\n}}\n",
        targets.join(", ")
    );
    Config::from_str(&src, "test.alloy").unwrap()
}

/// These pipelines have no remote_write component: nothing is written to storage.
fn start(config: Config, node: &str) -> Arc<Pipeline> {
    assert!(config.remote_writes.is_empty());
    Pipeline::start(config, node, Path::new("/nonexistent/storage")).unwrap()
}

fn members(states: &[(&str, NodeState)]) -> Vec<(String, NodeState)> {
    states.iter().map(|(n, s)| (n.to_string(), *s)).collect()
}

fn owned(p: &Pipeline) -> usize {
    p.stats().scrapes[0].owned
}

#[tokio::test]
async fn three_participants_split_the_targets_without_overlap() {
    let names = ["a", "b", "c"];
    let live = members(&names.map(|n| (n, NodeState::Participant)));
    let nodes: Vec<Arc<Pipeline>> = names.iter().map(|n| start(config(60, true), n)).collect();
    let mut seen: Vec<Target> = Vec::new();
    for p in &nodes {
        p.set_members(&live);
        let mine = p.owned_targets("s");
        assert_eq!(mine.len(), owned(p));
        assert!(!mine.is_empty(), "each node gets a share");
        seen.extend(mine);
    }
    seen.sort();
    let before = seen.len();
    seen.dedup();
    assert_eq!(before, seen.len(), "no target is owned twice");
    assert_eq!(seen.len(), 60, "every target is owned");
}

#[tokio::test]
async fn viewers_and_terminating_nodes_own_nothing_for_writes() {
    let p = start(config(10, true), "a");
    assert_eq!(owned(&p), 0, "no member list yet");
    p.set_members(&members(&[("a", NodeState::Viewer)]));
    assert_eq!(owned(&p), 0, "viewer");
    p.set_members(&members(&[("a", NodeState::Participant)]));
    assert_eq!(owned(&p), 10, "alone and participant: everything");
    p.set_members(&members(&[
        ("a", NodeState::Terminating),
        ("b", NodeState::Participant),
    ]));
    assert_eq!(owned(&p), 0, "terminating");
}

#[tokio::test]
async fn without_clustering_every_node_scrapes_every_target() {
    let p = start(config(10, false), "a");
    assert_eq!(owned(&p), 10, "even before joining");
    p.set_members(&members(&[
        ("a", NodeState::Participant),
        ("b", NodeState::Participant),
    ]));
    assert_eq!(owned(&p), 10);
}

#[tokio::test]
async fn a_reload_reassigns_and_stop_scraping_is_final() {
    let p = start(config(10, false), "a");
    p.set_members(&members(&[
        ("a", NodeState::Participant),
        ("b", NodeState::Participant),
    ]));
    assert_eq!(owned(&p), 10);
    p.apply(config(20, true));
    let share = owned(&p);
    assert!(share > 0 && share < 20, "clustering on: a share ({share})");
    assert_eq!(p.stats().scrapes[0].targets, 20);
    p.stop_scraping();
    assert_eq!(owned(&p), 0);
    p.set_members(&members(&[("a", NodeState::Participant)]));
    p.apply(config(5, false));
    assert_eq!(owned(&p), 0, "nothing starts again after stop_scraping");
}

#[tokio::test]
async fn duplicate_targets_are_scraped_once() {
    let src = "prometheus.scrape \"s\" {\n  targets = [{__address__ = \"127.0.0.1:1\"}, {__address__ = \"127.0.0.1:1\"}]\n  forward_to = []\n}\n";
    let p = start(Config::from_str(src, "t.alloy").unwrap(), "a");
    assert_eq!(p.stats().scrapes[0].targets, 1);
    assert_eq!(owned(&p), 1);
}
