//! End-to-end: headless Chromium (the Debian package) loads the clustering page of a real
//! 3-node cluster on loopback; the rendered DOM lists the three peers with their addresses
//! and states, marks the local node, and a node that is alone despite join addresses shows
//! the warning. Skips (with a message) only when /usr/bin/chromium is absent; CI installs it.

mod common;
mod ports;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Render `url` in headless Chromium and return the DOM after the page's scripts ran.
fn dump_dom(url: &str, profile: &Path) -> String {
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            // Let the page's fetches and rendering finish before the dump.
            "--virtual-time-budget=5000",
            &format!("--user-data-dir={}", profile.display()),
            "--dump-dom",
            url,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("chromium output");
    let dom = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        !dom.is_empty(),
        "chromium printed no DOM; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

/// The `<tr class="peer ...">` rows of the rendered peers table.
fn rows(dom: &str) -> Vec<String> {
    dom.split("<tr class=\"peer")
        .skip(1)
        .map(|r| r.split("</tr>").next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn the_clustering_page_shows_a_three_node_cluster_in_headless_chromium() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!(
            "SKIPPED: {CHROMIUM} is absent; install the Debian package `chromium` (ci/test.sh does)"
        );
        return;
    }
    let ports = free_ports(4);
    let flags = |join: &str| {
        let mut v = strings(&["--cluster.enabled"]);
        v.extend(strings(FAST));
        if !join.is_empty() {
            v.push(format!("--cluster.join-addresses={join}"));
        }
        v
    };
    let mut nodes = vec![Agent::start("page-a", ports[0], &flags(""))];
    nodes[0].wait_healthy();
    let seed = nodes[0].addr();
    nodes.push(Agent::start("page-b", ports[1], &flags(&seed)));
    nodes.push(Agent::start("page-c", ports[2], &flags(&seed)));
    for n in nodes.iter_mut() {
        n.wait_healthy();
    }
    let names = ["page-a", "page-b", "page-c"];
    wait_for("three participants", Duration::from_secs(20), || {
        nodes
            .iter()
            .all(|n| names_in_state(&n.peers(), "participant") == names)
    });

    let profile = tempfile::tempdir().unwrap();
    let dom = dump_dom(
        &format!("http://127.0.0.1:{}/clustering", ports[1]),
        profile.path(),
    );
    let rows = rows(&dom);
    assert_eq!(rows.len(), 3, "three peer rows in:\n{dom}");
    for (row, node) in rows.iter().zip(&nodes) {
        assert!(row.contains(&node.name), "{row}");
        assert!(row.contains(&node.addr()), "{row}");
        assert!(row.contains("participant"), "{row}");
    }
    // page-b is the local node: its row is marked, the others are not.
    assert!(
        rows[1].starts_with(" self\"") && rows[1].contains("this node"),
        "{}",
        rows[1]
    );
    assert!(!rows[0].contains("this node") && !rows[2].contains("this node"));
    // The node summary: name, advertised address, state.
    assert!(dom.contains("<dd id=\"node-name\">page-b</dd>"), "{dom}");
    assert!(dom.contains(&format!("<dd id=\"node-addr\">{}</dd>", nodes[1].addr())));
    assert!(dom.contains("state-participant"));
    assert!(
        dom.contains("<div id=\"alone\" class=\"banner warn\" hidden=\"\">"),
        "no warning: {dom}"
    );

    // A node given an unreachable peer shows the "alone" warning.
    let closed = free_ports(1)[0];
    let mut lonely = Agent::start(
        "page-lonely",
        ports[3],
        &flags(&format!("127.0.0.1:{closed}")),
    );
    lonely.wait_healthy();
    wait_for(
        "the lonely node knows it is alone",
        Duration::from_secs(10),
        || sample(&lonely.metrics(), "cluster_node_alone") == Some(1.0),
    );
    let dom = dump_dom(&format!("http://127.0.0.1:{}/", ports[3]), profile.path());
    let banner = dom
        .split("<div id=\"alone\"")
        .nth(1)
        .and_then(|s| s.split("</div>").next())
        .unwrap_or_default()
        .to_string();
    assert!(
        !banner.contains("hidden"),
        "the warning is visible: {banner}"
    );
    assert!(
        banner.contains("alone although join addresses were given")
            && banner.contains(&closed.to_string()),
        "{banner}"
    );
}
