//! Tests of `scrape_cache.rs`: each proves one of Prometheus' rules for what a scrape stores.

use super::*;
use crate::config::ScrapeConfig;
use crate::discovery::Target;
use crate::scrape::sample::is_stale_nan;

fn target() -> ScrapeTarget {
    ScrapeTarget::new(
        &Target::from_labels([("__address__", "h:1"), ("env", "prod")]),
        &ScrapeConfig::with_defaults("t"),
    )
    .unwrap()
}

const SHAPING: Shaping = Shaping {
    honor_labels: false,
    honor_timestamps: true,
};

fn labels_of(name: &str, body: &str, honor: bool) -> Result<Labels, String> {
    let p = exposition::parse(body.as_bytes(), Format::Text).unwrap();
    label_parts(name, &p[0].labels, &target().labels, honor)
}

#[test]
fn clashing_scraped_labels_become_exported_shortest_name_first() {
    let l = labels_of(
        "m",
        r#"m{job="theirs",instance="i",exported_job="x",a="1"} 1"#,
        false,
    )
    .unwrap();
    assert_eq!(
        format!("{l:?}"),
        r#"{__name__="m", a="1", env="prod", exported_exported_job="theirs", exported_instance="i", exported_job="x", instance="h:1", job="prometheus.scrape.t"}"#
    );
    let l = labels_of("m", r#"m{job="theirs",instance="i"} 1"#, true).unwrap();
    assert_eq!(l.get("job"), Some("theirs"));
    assert_eq!(l.get("instance"), Some("i"));
    assert_eq!(l.get("env"), Some("prod"));
}

#[test]
fn honor_labels_with_an_exposed_empty_value_drops_the_label() {
    let l = labels_of("m", r#"m{job="",instance=""} 1"#, true).unwrap();
    assert_eq!(l.get("job"), None);
    assert_eq!(l.get("instance"), None);
    assert_eq!(l.get("env"), Some("prod"));
    let l = labels_of("m", r#"m{job=""} 1"#, false).unwrap();
    assert_eq!(l.get("job"), Some("prometheus.scrape.t"));
}

#[test]
fn repeated_label_names_are_refused_unless_a_value_is_empty_or_a_target_label_wins() {
    assert!(labels_of("m", r#"m{a="1",a="2"} 1"#, false)
        .unwrap_err()
        .contains("not unique"));
    assert!(labels_of("m", r#"m{__name__="x"} 1"#, false).is_err());
    let l = labels_of("m", r#"m{a="",a="2"} 1"#, false).unwrap();
    assert_eq!(
        l.get("a"),
        None,
        "every label of a name with an empty value goes"
    );
    let l = labels_of("m", r#"m{env="1",env="2"} 1"#, false).unwrap();
    assert_eq!(l.get("env"), Some("prod"));
    assert_eq!(l.get("exported_env"), Some("1"));
}

/// One scrape as the loop does it: what it delivers, report series included, sorted.
fn scrape(st: &mut SeriesState, ts_ms: i64, body: Option<&str>) -> (Vec<Sample>, Scraped) {
    let t = target();
    let mut r = match body {
        Some(b) => st.scraped(&t, SHAPING, ts_ms, b.as_bytes(), Format::Text),
        None => Scraped {
            samples: st.failed(ts_ms),
            error: Some("down".into()),
            ..Scraped::default()
        },
    };
    let mut out = std::mem::take(&mut r.samples);
    let counts = (r.total, r.added, r.series_added);
    st.report(
        &t,
        ts_ms,
        r.error.is_none(),
        Duration::from_millis(20),
        counts,
        &mut out,
    );
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    (out, r)
}

fn value_of(out: &[Sample], name: &str) -> f64 {
    out.iter()
        .find(|s| s.labels.name() == name)
        .unwrap_or_else(|| panic!("no {name} in {out:?}"))
        .value
}

fn stale(out: &[Sample]) -> Vec<&str> {
    let mut v: Vec<&str> = out
        .iter()
        .filter(|s| is_stale_nan(s.value))
        .map(|s| s.labels.name())
        .collect();
    v.sort();
    v
}

#[test]
fn five_report_series_and_staleness_for_vanished_series() {
    let mut st = SeriesState::default();
    let (out, _) = scrape(&mut st, 5000, Some("a 1\nb 2\nc 3 1000\n"));
    assert_eq!(out.len(), 8);
    let c = out.iter().find(|s| s.labels.name() == "c").unwrap();
    assert_eq!(c.timestamp_ms, 1000, "explicit timestamp honoured");
    assert_eq!(value_of(&out, "up"), 1.0);
    assert_eq!(value_of(&out, "scrape_samples_scraped"), 3.0);
    assert_eq!(value_of(&out, "scrape_samples_post_metric_relabeling"), 3.0);
    assert_eq!(value_of(&out, "scrape_series_added"), 3.0);

    let (out, _) = scrape(&mut st, 20000, Some("a 1\nd 4\n"));
    assert_eq!(
        stale(&out),
        vec!["b"],
        "not c: it had an explicit timestamp"
    );
    assert_eq!(value_of(&out, "scrape_series_added"), 1.0, "only d is new");

    let (out, _) = scrape(&mut st, 35000, None);
    assert_eq!(stale(&out), vec!["a", "d"]);
    assert_eq!(value_of(&out, "up"), 0.0);
    assert_eq!(value_of(&out, "scrape_samples_scraped"), 0.0);

    let end = st.end_of_run(&target(), 40000);
    assert_eq!(end.len(), 5, "only the report series remained");
    assert!(end.iter().all(|s| is_stale_nan(s.value)));
}

#[test]
fn a_body_failing_midway_counts_what_it_read_and_keeps_those_series_fresh() {
    let mut st = SeriesState::default();
    scrape(&mut st, 1000, Some("a 1\nb{x=\"1\"} 2\n"));
    let (out, r) = scrape(&mut st, 2000, Some("a 1\nnew 5\nb{x=\"1\" 2\n"));
    assert!(r.error.as_deref().unwrap().contains("line 3"), "{r:?}");
    assert_eq!(
        stale(&out),
        vec!["b"],
        "a and new were read before the error"
    );
    assert_eq!(value_of(&out, "scrape_samples_scraped"), 2.0);
    assert!(!out.iter().any(|s| s.labels.name() == "a" && s.value == 1.0));
    // `new` counts as seen but was never stored: no staleness marker for it; `a` gets one.
    let (out, _) = scrape(&mut st, 3000, Some("b{x=\"1\"} 1\n"));
    assert_eq!(stale(&out), vec!["a"]);
    assert_eq!(
        value_of(&out, "scrape_series_added"),
        0.0,
        "b is still cached: a failed scrape flushes nothing"
    );
}

#[test]
fn an_invalid_sample_is_counted_then_fails_the_scrape() {
    let mut st = SeriesState::default();
    let (out, r) = scrape(&mut st, 1000, Some("a 1\n  b 2\nc 3\n"));
    assert!(r.error.unwrap().contains("invalid metric name"));
    assert_eq!(value_of(&out, "scrape_samples_scraped"), 2.0);
    assert_eq!(value_of(&out, "scrape_samples_post_metric_relabeling"), 1.0);
    let (_, r) = scrape(&mut st, 2000, Some("a{x=\"1\",x=\"2\"} 1\n"));
    assert!(r.error.unwrap().contains("not unique"));
}

#[test]
fn out_of_order_and_future_samples_are_dropped_one_by_one() {
    let mut st = SeriesState::default();
    let now = 1_700_000_000_000;
    let (out, r) = scrape(&mut st, now, Some("a 1 1699999999000\nb 2\n"));
    assert!(r.error.is_none());
    assert!(out.iter().any(|s| s.labels.name() == "a"));
    // a goes backwards, f is 11 minutes ahead; both dropped, b still arrives.
    let body = format!(
        "a 3 1699999998000\nb 4\nf 5 {}\nc 6 1699999999000\nc 7 1699999998000\n",
        now + 15_000 + 11 * 60_000
    );
    let (out, r) = scrape(&mut st, now + 15_000, Some(&body));
    assert!(r.error.is_none());
    let names: Vec<&str> = out.iter().map(|s| s.labels.name()).collect();
    assert!(!names.contains(&"a") && !names.contains(&"f"), "{names:?}");
    assert_eq!(
        out.iter().filter(|s| s.labels.name() == "c").count(),
        2,
        "within one scrape a series may go back (Prometheus checks stored samples only)"
    );
    assert_eq!(value_of(&out, "b"), 4.0);
    assert_eq!(value_of(&out, "scrape_samples_post_metric_relabeling"), 5.0);
    assert_eq!(
        value_of(&out, "scrape_series_added"),
        1.0,
        "c; f was dropped"
    );
    // Equal timestamps are not out of order.
    let (out, _) = scrape(&mut st, now + 30_000, Some("a 8 1699999999000\n"));
    assert_eq!(value_of(&out, "a"), 8.0);
}

#[test]
fn a_failed_scrape_does_not_move_the_newest_timestamp() {
    let mut st = SeriesState::default();
    let now = 1_700_000_000_000;
    scrape(&mut st, now, Some("a 1 1699999990000\n"));
    let (_, r) = scrape(&mut st, now + 1000, Some("a 2 1699999999000\nbad{\n"));
    assert!(r.error.is_some());
    let (out, _) = scrape(&mut st, now + 2000, Some("a 3 1699999995000\n"));
    assert_eq!(
        value_of(&out, "a"),
        3.0,
        "the failed scrape's sample was not stored"
    );
}

#[test]
fn a_series_seen_before_reuses_its_labels_and_one_written_differently_is_the_same_series() {
    let mut st = SeriesState::default();
    let (first, _) = scrape(&mut st, 1000, Some("m{a=\"1\",b=\"2\"} 1\n"));
    let (second, _) = scrape(&mut st, 2000, Some("m{a=\"1\",b=\"2\"} 2\n"));
    let m = |v: &[Sample]| v.iter().find(|s| s.labels.name() == "m").unwrap().clone();
    assert_eq!(m(&first).labels, m(&second).labels);
    assert_eq!(st.cached_series(), 1);
    let (third, _) = scrape(&mut st, 3000, Some("m{b=\"2\", a=\"1\"} 3\n"));
    assert_eq!(
        third.iter().filter(|s| s.labels.name() == "m").count(),
        1,
        "no staleness marker: same series"
    );
    assert_eq!(st.cached_series(), 1, "the old spelling was evicted");
}

#[test]
fn metadata_follows_the_metadata_lines_and_outlives_its_family_by_ten_scrapes() {
    let mut st = SeriesState::default();
    let t = target();
    let om = "# TYPE x counter\n# HELP x Some help.\n# UNIT x_seconds seconds\nx_total 1\n# EOF\n";
    let r = st.scraped(&t, SHAPING, 1000, om.as_bytes(), Format::OpenMetrics);
    assert!(r.error.is_none());
    let md = st.metadata();
    assert_eq!(md.len(), 2);
    assert_eq!(md[0].metric_family_name, "x");
    assert_eq!(
        (md[0].kind, md[0].help.as_str()),
        (MetricType::Counter, "Some help.")
    );
    assert_eq!(
        (md[1].kind, md[1].unit.as_str()),
        (MetricType::Unknown, "seconds")
    );
    let same = st.metadata();
    assert!(Arc::ptr_eq(&md, &same), "unchanged metadata is not rebuilt");
    for i in 0..10 {
        st.scraped(&t, SHAPING, 2000 + i, b"y 1\n", Format::Text);
        assert_eq!(st.metadata().len(), 2, "scrape {i}");
    }
    st.scraped(&t, SHAPING, 3000, b"y 1\n", Format::Text);
    assert!(st.metadata().is_empty());
}
