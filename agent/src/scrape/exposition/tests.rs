//! Unit tests of both parsers: each case is a rule of Prometheus 2.42's lexers (see the module
//! docs); `agent/tests/scrape_differential.rs` checks the same rules against Prometheus.

use super::*;

fn text(body: &str) -> Result<Vec<ParsedSample>, ParseError> {
    parse(body.as_bytes(), Format::Text)
}

fn om(body: &str) -> Result<Vec<ParsedSample>, ParseError> {
    parse(body.as_bytes(), Format::OpenMetrics)
}

fn one(body: &str) -> ParsedSample {
    let mut v = text(body).unwrap();
    assert_eq!(v.len(), 1, "{body:?}");
    v.remove(0)
}

fn pairs(p: &ParsedSample) -> Vec<(&str, &str)> {
    p.labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[test]
fn text_comments_metadata_and_samples() {
    let body =
        "# HELP x_total The \\\\x\\n.\n# TYPE x_total counter\n# free comment\nx_total 3\n\n";
    let entries: Vec<Entry> = Parser::new(body.as_bytes(), Format::Text)
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        entries[0],
        Entry::Help {
            name: b"x_total",
            help: "The \\x\n.".into()
        }
    );
    assert_eq!(
        entries[1],
        Entry::Type {
            name: b"x_total",
            kind: MetricType::Counter
        }
    );
    assert_eq!(entries[2], Entry::Comment);
    assert_eq!(entries.len(), 4);
    let v = text(body).unwrap();
    assert_eq!((v[0].name.as_str(), v[0].value), ("x_total", 3.0));
}

#[test]
fn text_label_syntax_is_as_loose_as_prometheus() {
    let s = one("m{a=\"x\\\"y\",b=\"c\\\\d\",c=\"l1\\nl2\",d=\"\\q\",} 1");
    assert_eq!(
        pairs(&s),
        vec![("a", "x\"y"), ("b", "c\\d"), ("c", "l1\nl2"), ("d", "\\q")]
    );
    // Blanks anywhere, commas optional, a raw newline inside a value.
    let s = one("m { a = \"1\"  b=\"2\nx\" , } 5 7");
    assert_eq!(pairs(&s), vec![("a", "1"), ("b", "2\nx")]);
    assert_eq!(s.timestamp_ms, Some(7));
    // Repeated names are the scrape loop's business.
    assert_eq!(one("m{a=\"1\",a=\"2\"} 1").labels.len(), 2);
}

#[test]
fn text_values_are_go_floats_and_nan_is_canonical() {
    for (v, want) in [
        ("1.5e3", 1500.0),
        ("-0.5", -0.5),
        ("+Inf", f64::INFINITY),
        ("-inf", f64::NEG_INFINITY),
        ("Infinity", f64::INFINITY),
        (".5", 0.5),
        ("5.", 5.0),
        ("1e-400", 0.0),
    ] {
        assert_eq!(one(&format!("a {v}")).value, want, "{v}");
    }
    for v in ["NaN", "nan", "NAN"] {
        assert_eq!(one(&format!("a {v}")).value.to_bits(), NORMAL_NAN_BITS);
    }
    for v in [
        "+NaN", "-nan", "1e400", "-1e309", "0x1p3", "1_000", "0x10", "1,5", "inf0",
    ] {
        assert!(text(&format!("a {v}\n")).is_err(), "{v}");
    }
}

#[test]
fn text_rejects_what_prometheus_rejects() {
    let cases = [
        ("a 1\r\n", 1),
        ("a 1 -5\n", 1),
        ("a 1 1.5\n", 1),
        ("a 1 2 3\n", 1),
        ("a 1 99999999999999999999\n", 1),
        ("a 1 # comment\n", 1),
        ("ok 1\n# TYPE a bogus\n", 2),
        ("# TYPE a counter \n", 1),
        ("# TYPE a  counter\n", 1),
        ("# TYPE a unknown\n", 1),
        ("# TYPE a gaugehistogram\n", 1),
        ("# TYPE a\n", 1),
        ("# TYPE 1a counter\n", 1),
        ("# HELP a \u{0}\n", 1),
        ("a{x=\"1\" 2\n", 1),
        ("a{x=\"1} 2", 1),
        ("a{x=1} 2\n", 1),
        ("a{,} 2\n", 1),
        ("a{x=\"1\",,} 2\n", 1),
        ("a{1x=\"1\"} 1\n", 1),
        ("a{x=\"1\"}{y=\"2\"} 1\n", 1),
        ("{x=\"1\"} 1\n", 1),
        ("1a 2\n", 1),
        ("a\n", 1),
        ("a{x=\"\\\n\"} 1\n", 1),
        ("a{x=\"\u{ff}\"} 1\n", 1),
    ];
    for (body, line) in cases {
        // Bodies with invalid UTF-8 are spelled with \u{ff}; make that a raw 0xff byte.
        let bytes: Vec<u8> = body
            .chars()
            .map(|c| if c == '\u{ff}' { 0xff } else { c as u8 })
            .collect();
        match parse(&bytes, Format::Text) {
            Err(e) => assert_eq!(e.line, line, "{body:?}: {e}"),
            Ok(v) => panic!("{body:?} accepted: {v:?}"),
        }
    }
}

#[test]
fn text_accepts_what_prometheus_accepts() {
    // `# TYPE` / `# HELP` without a name, keywords glued to `#`, invalid UTF-8 in a comment.
    let mut body = b"# TYPE\n# HELP\n#TYPE a bogus\n# x \xff\xfe\n".to_vec();
    body.extend_from_slice(b"# HELP a\n# TYPE b\tcounter\na 1\n  \t\n\nb 2 3   \n");
    let v = parse(&body, Format::Text).unwrap();
    assert_eq!(v.len(), 2);
    // A NUL where a line starts ends the exposition; what follows is never read.
    let v = parse(b"a 1\n\0garbage {{{\n", Format::Text).unwrap();
    assert_eq!(v.len(), 1);
    let v = parse(b"a 1\n#x\0garbage {{{\n", Format::Text).unwrap();
    assert_eq!(v.len(), 1);
    // `# EOF` is a comment in the text format.
    assert_eq!(text("a 1\n# EOF\nb 2\n").unwrap().len(), 2);
    // The last line needs no newline.
    assert_eq!(text("a 1").unwrap().len(), 1);
}

#[test]
fn text_leading_blanks_stay_in_the_series() {
    let raw: Vec<Entry> = Parser::new(b"  a{b=\"1\"} 1\n", Format::Text)
        .map(Result::unwrap)
        .collect();
    let Entry::Sample(s) = &raw[0] else {
        panic!("{raw:?}")
    };
    assert_eq!(s.series, b"  a{b=\"1\"}");
    assert_eq!(one("  a 1").name, "  a");
    assert!(!is_metric_name("  a"));
}

#[test]
fn openmetrics_needs_eof_and_single_spaces() {
    let body = "# TYPE a counter\n# HELP a Some \\\"help\\\".\n# UNIT a_seconds seconds\na_total{x=\"1\"} 1 1.5\na_created 2\n# EOF\n";
    let entries: Vec<Entry> = Parser::new(body.as_bytes(), Format::OpenMetrics)
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        entries[1],
        Entry::Help {
            name: b"a",
            help: "Some \"help\".".into()
        }
    );
    assert_eq!(
        entries[2],
        Entry::Unit {
            name: b"a_seconds",
            unit: b"seconds"
        }
    );
    let v = om(body).unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].timestamp_ms, Some(1500));
    assert_eq!(
        om("a 1 -1.0005\n# EOF").unwrap()[0].timestamp_ms,
        Some(-1000)
    );
    assert_eq!(om("a 1 1.001\n# EOF").unwrap()[0].timestamp_ms, Some(1000));
    let e = om("# TYPE a counter\na 1\n").unwrap_err();
    assert!(e.message.contains("# EOF"), "{e}");
    for bad in [
        "a 1\n# EOF\n\n",
        "a 1\n# EOF\nb 2\n",
        "a  1\n# EOF\n",
        "a\t1\n# EOF\n",
        "\na 1\n# EOF\n",
        " a 1\n# EOF\n",
        "# comment\n# EOF\n",
        "#TYPE a counter\n# EOF\n",
        "# TYPE a untyped\n# EOF\n",
        "# TYPE a counter \n# EOF\n",
        "# UNIT a_bytes seconds\n# EOF\n",
        "# UNIT abytes bytes\n# EOF\n",
        "a{x=\"1\",} 1\n# EOF\n",
        "a{x=\"1\" ,y=\"2\"} 1\n# EOF\n",
        "a {x=\"1\"} 1\n# EOF\n",
        "a{x=\"a\nb\"} 1\n# EOF\n",
        "a 1 NaN\n# EOF\n",
        "a 1\r\n# EOF\n",
        "a 1 2 3\n# EOF\n",
        "a 1 # {x=\"1\"} 1\n# EOF\n",
    ] {
        assert!(om(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn openmetrics_exemplars_are_checked_and_dropped() {
    let v = om("a_total 1 # {trace_id=\"x\"} 0.5 12.5\na_bucket{le=\"1.0\"} 2 3 # {} 1\n# EOF")
        .unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(pairs(&v[1]), vec![("le", "1.0")]);
    assert_eq!(v[1].timestamp_ms, Some(3000));
    for bad in [
        "a_total 1 # {x=\"1\"}\n# EOF\n",
        "a_total 1 # {x=\"1\"} 1 NaN\n# EOF\n",
        "a_total 1 # {x=\"1\"} 1 2 3\n# EOF\n",
        "a_total 1 # {x=1} 1\n# EOF\n",
    ] {
        assert!(om(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn content_types_pick_the_parser_as_prometheus_does() {
    let f = |v: &str| Format::from_content_type(Some(v.as_bytes()));
    assert_eq!(
        f("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        Format::OpenMetrics
    );
    assert_eq!(f("Application/OpenMetrics-Text"), Format::OpenMetrics);
    assert_eq!(f("application/openmetrics-text;"), Format::OpenMetrics);
    assert_eq!(f("text/plain; version=0.0.4"), Format::Text);
    assert_eq!(Format::from_content_type(None), Format::Text);
    // Go's mime.ParseMediaType refuses these, and Prometheus falls back to the text parser.
    for bad in [
        "application/openmetrics-text; version",
        "application/openmetrics-text; a=1; a=2",
        "application/openmetrics-text; ; a=1",
        "application/openmetrics-text x",
        "application/openmetrics-text; a=\"1",
    ] {
        assert_eq!(f(bad), Format::Text, "{bad}");
    }
}

#[test]
fn a_decoded_series_matches_what_the_parser_split() {
    let body = b"a{x=\"1 }\",y=\"\\\\\"} 2 3\n";
    let raw: Vec<Entry> = Parser::new(body, Format::Text)
        .map(Result::unwrap)
        .collect();
    let Entry::Sample(s) = &raw[0] else { panic!() };
    assert_eq!(s.series, b"a{x=\"1 }\",y=\"\\\\\"}");
    let (name, labels) = parse_series(s.series, Format::Text).unwrap();
    assert_eq!(name, "a");
    assert_eq!(
        labels,
        vec![("x".into(), "1 }".into()), ("y".into(), "\\".into())]
    );
}
