//! The targets of the scrape differential test, one per case: what each serves at each scrape.
//! Cases are ours, written from the public format specifications (Prometheus text format
//! 0.0.4, OpenMetrics 1.0) and Prometheus' documented scrape behaviour; each name says what it
//! probes. A target serves its body for scrapes 0..SCRAPES (the harness answers 503 after
//! that, so every case also ends with a failed scrape: `up 0` and staleness markers).
//!
//! Explicit timestamps are relative to `base_ms`, a time a few minutes after the test started
//! (after both scrapers started, within the 10 minutes Prometheus accepts ahead).

/// The scrape jobs, one per combination of options (a Prometheus `scrape_configs` entry and a
/// `prometheus.scrape` component each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Job {
    Default,
    HonorLabels,
    NoTimestamps,
    Limit1KB,
}

impl Job {
    pub const ALL: [Job; 4] = [
        Job::Default,
        Job::HonorLabels,
        Job::NoTimestamps,
        Job::Limit1KB,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Job::Default => "default",
            Job::HonorLabels => "honor_labels",
            Job::NoTimestamps => "no_timestamps",
            Job::Limit1KB => "limit_1kb",
        }
    }

    /// (Prometheus YAML lines, Alloy attribute lines) for the job's options.
    pub fn options(self) -> (&'static str, &'static str) {
        match self {
            Job::Default => ("", ""),
            Job::HonorLabels => ("    honor_labels: true\n", "  honor_labels = true\n"),
            Job::NoTimestamps => (
                "    honor_timestamps: false\n",
                "  honor_timestamps = false\n",
            ),
            Job::Limit1KB => (
                "    body_size_limit: 1KB\n",
                "  body_size_limit = \"1KB\"\n",
            ),
        }
    }
}

/// One request to a case's target.
pub struct Request<'a> {
    /// The scrape number for this scraper (0-based).
    pub n: u64,
    pub path: &'a str,
    pub accept: &'a str,
    pub base_ms: i64,
}

/// What a target answers.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

pub struct Case {
    pub name: &'static str,
    pub job: Job,
    /// A deliberate difference documented in agent/README.md: the case is served and both
    /// results are printed, but not compared.
    pub known_divergence: Option<&'static str>,
    pub serve: fn(&Request) -> Reply,
}

const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub fn reply(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
    Reply {
        status,
        headers: vec![("Content-Type", content_type.to_string())],
        body: body.into(),
    }
}

fn text(body: impl Into<Vec<u8>>) -> Reply {
    reply(200, TEXT, body)
}

fn om(body: impl Into<Vec<u8>>) -> Reply {
    reply(200, OPENMETRICS, body)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn gzipped(content_type: &str, encoding: &str, body: Vec<u8>) -> Reply {
    let mut r = reply(200, content_type, body);
    r.headers.push(("Content-Encoding", encoding.to_string()));
    r
}

/// A body of exactly `n` bytes (at least 30): `pad{i="NN",x="aaa..."} 1` lines.
fn sized(n: usize) -> Vec<u8> {
    let line =
        |i: usize, fill: usize| format!("pad{{i=\"{i:02}\",x=\"{}\"}} 1\n", "a".repeat(fill));
    let overhead = line(0, 0).len();
    let mut body = Vec::new();
    let mut i = 0;
    while body.len() < n {
        let left = n - body.len();
        let fill = if left >= 2 * overhead + 60 {
            60
        } else {
            left - overhead
        };
        body.extend_from_slice(line(i, fill).as_bytes());
        i += 1;
    }
    assert_eq!(body.len(), n);
    body
}

/// A client_golang-like target: OpenMetrics when asked for it, the text format otherwise
/// (with the spellings each format's encoder uses).
fn negotiating(r: &Request) -> Reply {
    let v = r.n + 1;
    if r.accept.contains("application/openmetrics-text") {
        om(format!(
            "# HELP http_requests Requests served.\n# TYPE http_requests counter\n\
             http_requests_total{{code=\"200\"}} {v}.0\nhttp_requests_created{{code=\"200\"}} 1.7e+09\n\
             # HELP latency_seconds Latency.\n# TYPE latency_seconds histogram\n# UNIT latency_seconds seconds\n\
             latency_seconds_bucket{{le=\"0.5\"}} 1.0\nlatency_seconds_bucket{{le=\"1.0\"}} {v}.0\n\
             latency_seconds_bucket{{le=\"+Inf\"}} {v}.0\nlatency_seconds_sum 2.5\nlatency_seconds_count {v}.0\n\
             latency_seconds_created 1.7e+09\n\
             # TYPE rpc_seconds summary\nrpc_seconds{{quantile=\"1.0\"}} 0.3\nrpc_seconds_sum 1.0\nrpc_seconds_count 4.0\n\
             # TYPE build info\nbuild_info{{version=\"1.2\"}} 1.0\n# EOF\n"
        ))
    } else {
        text(format!(
            "# HELP http_requests_total Requests served.\n# TYPE http_requests_total counter\n\
             http_requests_total{{code=\"200\"}} {v}\n\
             # HELP latency_seconds Latency.\n# TYPE latency_seconds histogram\n\
             latency_seconds_bucket{{le=\"0.5\"}} 1\nlatency_seconds_bucket{{le=\"1\"}} {v}\n\
             latency_seconds_bucket{{le=\"+Inf\"}} {v}\nlatency_seconds_sum 2.5\nlatency_seconds_count {v}\n\
             # TYPE rpc_seconds summary\nrpc_seconds{{quantile=\"1\"}} 0.3\nrpc_seconds_sum 1\nrpc_seconds_count 4\n\
             # TYPE build_info gauge\nbuild_info{{version=\"1.2\"}} 1\n"
        ))
    }
}

macro_rules! case {
    ($name:literal, $job:ident, $serve:expr) => {
        Case {
            name: $name,
            job: Job::$job,
            known_divergence: None,
            serve: $serve,
        }
    };
}

pub fn cases() -> Vec<Case> {
    vec![
        // ---- The text format: what Prometheus accepts.
        case!("text_basic", Default, |r| text(format!(
            "# HELP requests_total Requests.\n# TYPE requests_total counter\nrequests_total{{code=\"200\"}} {}\n\
             # TYPE temperature gauge\ntemperature 21.5\nuntyped_thing 3\n",
            r.n * 10
        ))),
        case!("text_series_come_and_go", Default, |r| text(match r.n {
            0 => "a 1\nb 1\n",
            1 => "a 2\nb 2\nc 2\n",
            _ => "a 3\nc 3\n",
        })),
        case!("text_series_respelled", Default, |r| text(if r.n == 1 {
            "m{b=\"2\",a=\"1\"} 5\n"
        } else {
            "m{a=\"1\",b=\"2\"} 5\n"
        })),
        case!("text_label_escapes", Default, |_| text(
            "m{a=\"q\\\"uote\",b=\"back\\\\slash\",c=\"new\\nline\",d=\"other\\q\",e=\"ünïcødé €\"} 1\n"
        )),
        case!("text_loose_label_syntax", Default, |_| text(
            "m { a = \"1\" , b=\"2\" c=\"3\",} 1\nn{} 2\no{x=\"1\",} 3\n"
        )),
        case!("text_blank_lines_tabs_trailing_blanks", Default, |_| text(
            "\n\n  \t \na\t1\t\nb 2   \n\n# c\n\nc{x=\"1\"}\t3\n"
        )),
        case!("text_no_final_newline", Default, |_| text("a 1\nb 2")),
        case!("text_empty_body", Default, |_| text("")),
        case!("text_comments_only", Default, |_| text(
            "# just a comment\n#another\n# HELP\n# TYPE\n"
        )),
        case!("text_type_keyword_glued", Default, |_| text(
            b"#TYPE a bogus\n#HELP a \xff\na 1\n".to_vec()
        )),
        case!("text_invalid_utf8_in_comment", Default, |_| text(
            b"# caf\xe9 \xff\xfe\na 1\n".to_vec()
        )),
        case!("text_eof_is_a_comment", Default, |_| text("a 1\n# EOF\nb 2\n")),
        case!("text_nul_at_line_start_ends_body", Default, |_| text(
            b"a 1\n\x00garbage {{{\nb 2\n".to_vec()
        )),
        case!("text_nul_in_label_value", Default, |_| text(
            b"m{a=\"x\x00y\"} 1\n".to_vec()
        )),
        case!("text_newline_in_label_value", Default, |_| text(
            "m{a=\"line1\nline2\"} 1\n"
        )),
        case!("text_help_escapes", Default, |_| text(
            "# HELP a Back\\\\slash, new\\nline, \\\"kept\\\", tab\there.\n# TYPE a gauge\na 1\n\
             # HELP b\n# HELP c   three blanks\nb 1\nc 1\n"
        )),
        case!("text_values", Default, |_| text(
            "v_nan NaN\nv_nan_lower nan\nv_inf +Inf\nv_ninf -Inf\nv_inf_word Infinity\n\
             v_neg_zero -0\nv_zero 0\nv_tiny 1e-400\nv_half .5\nv_five 5.\nv_exp 1.5E3\nv_plus +3\nv_big 1.7976931348623157e308\n"
        )),
        case!("text_duplicate_series_in_one_scrape", Default, |_| text("a 1\na 2\n")),
        case!("text_exported_labels", Default, |_| text(
            "m{job=\"theirs\",instance=\"elsewhere\",exported_job=\"x\",case=\"\",a=\"1\"} 1\n"
        )),
        case!("text_empty_label_value", Default, |_| text("m{a=\"\",b=\"1\"} 1\n")),
        case!("text_empty_job", Default, |_| text("m{job=\"\"} 1\n")),
        case!("text_timestamps", Default, |r| text(format!(
            "with_ts 1 {}\nwith_ts_too 2 {}\nwithout 3\n",
            r.base_ms,
            r.base_ms + 500
        ))),
        case!("text_timestamps_backwards", Default, |r| text(format!(
            "t {} {}\nok 1\n",
            r.n,
            r.base_ms + [2000, 1000, 3000][r.n as usize % 3]
        ))),
        case!("text_timestamp_from_1970", Default, |_| text("old 1 1000\nfresh 2\n")),
        case!("text_timestamp_far_future", Default, |r| text(format!(
            "future 1 {}\nfresh 2\n",
            r.base_ms + 20 * 60 * 1000
        ))),
        case!("text_series_vanish_with_timestamps", Default, |r| text(if r.n == 0 {
            format!("a 1 {}\nb 1\n", r.base_ms)
        } else {
            "c 1\n".to_string()
        })),
        // ---- The text format: what Prometheus refuses (up 0; counts what it read).
        case!("text_crlf", Default, |_| text("a 1\r\nb 2\r\n")),
        case!("text_leading_blank_before_sample", Default, |_| text("a 1\n  b 2\nc 3\n")),
        case!("text_type_trailing_space", Default, |_| text("# TYPE a counter \na 1\n")),
        case!("text_type_two_spaces", Default, |_| text("# TYPE a  counter\na 1\n")),
        case!("text_type_unknown", Default, |_| text("a 1\n# TYPE b unknown\nb 1\n")),
        case!("text_type_gaugehistogram", Default, |_| text("# TYPE b gaugehistogram\nb 1\n")),
        case!("text_type_without_type", Default, |_| text("# TYPE a\na 1\n")),
        case!("text_help_invalid_utf8", Default, |_| text(
            b"a 1\n# HELP a caf\xe9\nb 1\n".to_vec()
        )),
        case!("text_label_invalid_utf8", Default, |_| text(
            b"a 1\nm{a=\"caf\xe9\"} 1\n".to_vec()
        )),
        case!("text_value_overflow", Default, |_| text("a 1\nb 1e400\n")),
        case!("text_signed_nan", Default, |_| text("a 1\nb +NaN\n")),
        case!("text_hex_and_underscore_values", Default, |r| text(if r.n % 2 == 0 {
            "a 0x1p3\n"
        } else {
            "a 1_000\n"
        })),
        case!("text_negative_timestamp", Default, |_| text("a 1\nb 2 -5\nc 3\n")),
        case!("text_float_timestamp", Default, |_| text("a 1 1.5\n")),
        case!("text_comment_after_value", Default, |_| text("a 1 # why\n")),
        case!("text_missing_value", Default, |_| text("a 1\nb\nc 3\n")),
        case!("text_brace_at_line_start", Default, |_| text("{x=\"1\"} 1\n")),
        case!("text_digit_at_line_start", Default, |_| text("1a 1\n")),
        case!("text_repeated_label_name", Default, |_| text(
            "a 1\nm{x=\"1\",x=\"2\"} 1\nz 1\n"
        )),
        case!("text_name_as_label", Default, |_| text("m{__name__=\"other\"} 1\n")),
        case!("text_unterminated_label_value", Default, |_| text("m{a=\"1} 1\n")),
        case!("text_fails_midway_after_good_scrapes", Default, |r| text(if r.n == 0 {
            "a 1\nb 1\nc 1\n"
        } else {
            "a 2\nnew 2\nbroken{ 2\nc 2\n"
        })),
        // ---- Content negotiation, encodings, redirects, statuses.
        case!("negotiates_openmetrics", Default, negotiating),
        case!("openmetrics_unasked", Default, |_| om(
            "# TYPE x counter\nx_total 1.0\nx_created 1.7e9\n# EOF\n"
        )),
        case!("openmetrics_content_type_case", Default, |_| reply(
            200,
            "Application/OpenMetrics-Text; version=1.0.0",
            "x 1\n# EOF\n"
        )),
        case!("openmetrics_content_type_malformed", Default, |_| reply(
            200,
            "application/openmetrics-text; version",
            "# TYPE x counter\nx_total 1\n# EOF\n"
        )),
        case!("no_content_type", Default, |_| Reply {
            status: 200,
            headers: vec![],
            body: b"a 1\n".to_vec()
        }),
        case!("gzip", Default, |_| gzipped(TEXT, "gzip", gzip(b"a 1\nb 2\n"))),
        case!("gzip_openmetrics", Default, |_| gzipped(
            OPENMETRICS,
            "gzip",
            gzip(b"# TYPE x gauge\nx 1.0\n# EOF\n")
        )),
        case!("gzip_two_members", Default, |_| {
            let mut b = gzip(b"a 1\n");
            b.extend(gzip(b"b 2\n"));
            gzipped(TEXT, "gzip", b)
        }),
        case!("gzip_corrupt", Default, |_| gzipped(
            TEXT,
            "gzip",
            b"\x1f\x8b\x08\x00not gzip at all".to_vec()
        )),
        case!("unknown_encoding_read_as_is", Default, |_| gzipped(
            TEXT,
            "identity",
            b"a 1\n".to_vec()
        )),
        case!("x_gzip_is_not_gzip", Default, |_| gzipped(
            TEXT,
            "x-gzip",
            gzip(b"a 1\n")
        )),
        case!("redirect", Default, |r| if r.path == "/metrics" {
            let mut x = reply(302, TEXT, "");
            x.headers.push(("Location", "/elsewhere".into()));
            x
        } else {
            text("redirected 1\n")
        }),
        case!("redirect_relative_twice", Default, |r| match r.path {
            "/metrics" => {
                let mut x = reply(301, TEXT, "");
                x.headers.push(("Location", "a/b".into()));
                x
            }
            "/a/b" => {
                let mut x = reply(307, TEXT, "");
                x.headers.push(("Location", "../final".into()));
                x
            }
            _ => text("redirected 1\n"),
        }),
        case!("status_404", Default, |_| reply(404, TEXT, "no")),
        case!("status_500_after_good", Default, |r| if r.n == 0 {
            text("a 1\n")
        } else {
            reply(500, TEXT, "oops")
        }),
        // ---- OpenMetrics: what Prometheus accepts.
        case!("om_families", Default, |r| om(format!(
            "# TYPE requests counter\n# HELP requests Requests \\\"served\\\".\nrequests_total {} 1.5\nrequests_created 1700000000\n\
             # TYPE size_bytes gauge\n# UNIT size_bytes bytes\nsize_bytes 3\n\
             # TYPE lat histogram\nlat_bucket{{le=\"1.0\"}} 1\nlat_bucket{{le=\"+Inf\"}} 2\nlat_count 2\nlat_sum 1.5\n\
             # TYPE gh gaugehistogram\ngh_bucket{{le=\"+Inf\"}} 1\ngh_gcount 1\ngh_gsum 1\n\
             # TYPE st stateset\nst{{st=\"a\"}} 1\nst{{st=\"b\"}} 0\n\
             # TYPE inf info\ninf_info{{v=\"1\"}} 1\n# TYPE unk unknown\nunk 1\n# EOF",
            r.n
        ))),
        case!("om_timestamps", Default, |r| om(format!(
            "a 1 {}\nb 1 {}.5\nc 1 {}.0011\nd 1\n# EOF\n",
            r.base_ms / 1000,
            r.base_ms / 1000,
            r.base_ms / 1000
        ))),
        case!("om_negative_timestamp", Default, |_| om("a 1 -1.5\nb 2\n# EOF\n")),
        case!("om_exemplars", Default, |r| om(format!(
            "# TYPE a counter\na_total 1 # {{trace_id=\"abc\"}} 0.5 {}\n\
             # TYPE h histogram\nh_bucket{{le=\"+Inf\"}} 1 # {{}} 1\nh_count 1\nh_sum 1\n# EOF\n",
            r.base_ms / 1000
        ))),
        case!("om_eof_without_newline", Default, |_| om("a 1\n# EOF")),
        case!("om_empty", Default, |_| om("# EOF\n")),
        // ---- OpenMetrics: what Prometheus refuses.
        case!("om_missing_eof", Default, |_| om("# TYPE a gauge\na 1\nb 2\n")),
        case!("om_data_after_eof", Default, |_| om("a 1\n# EOF\nb 2\n")),
        case!("om_blank_line", Default, |_| om("a 1\n\nb 2\n# EOF\n")),
        case!("om_plain_comment", Default, |_| om("a 1\n# a comment\n# EOF\n")),
        case!("om_untyped_type", Default, |_| om("# TYPE a untyped\na 1\n# EOF\n")),
        case!("om_unit_not_a_suffix", Default, |_| om(
            "# TYPE a_bytes gauge\n# UNIT a_bytes seconds\na_bytes 1\n# EOF\n"
        )),
        case!("om_trailing_comma", Default, |_| om("a{x=\"1\",} 1\n# EOF\n")),
        case!("om_two_spaces", Default, |_| om("a  1\n# EOF\n")),
        case!("om_tab", Default, |_| om("a\t1\n# EOF\n")),
        case!("om_nan_timestamp", Default, |_| om("a 1 NaN\n# EOF\n")),
        case!("om_exemplar_on_gauge", Default, |_| om(
            "# TYPE g gauge\ng 1 # {x=\"1\"} 1\n# EOF\n"
        )),
        case!("om_crlf", Default, |_| om("a 1\r\n# EOF\r\n")),
        // ---- honor_labels, honor_timestamps, body_size_limit.
        case!("honor_labels_kept", HonorLabels, |_| text(
            "m{job=\"custom\",instance=\"other\",a=\"1\"} 1\nn 2\n"
        )),
        case!("honor_labels_empty_job", HonorLabels, |_| text(
            "m{job=\"\",instance=\"\"} 1\n"
        )),
        case!("honor_timestamps_false", NoTimestamps, |r| text(if r.n == 0 {
            format!("a 1 {}\nb 1 {}\n", r.base_ms, r.base_ms)
        } else {
            format!("a 2 {}\n", r.base_ms)
        })),
        case!("limit_1kb_under", Limit1KB, |_| text(sized(1000))),
        case!("limit_1kb_one_less", Limit1KB, |_| text(sized(1023))),
        case!("limit_1kb_exact", Limit1KB, |_| text(sized(1024))),
        case!("limit_1kb_gzip_exact", Limit1KB, |_| gzipped(
            TEXT,
            "gzip",
            gzip(&sized(1024))
        )),
        case!("limit_1kb_gzip_under", Limit1KB, |_| gzipped(
            TEXT,
            "gzip",
            gzip(&sized(1023))
        )),
        // ---- Deliberate differences (agent/README.md).
        Case {
            name: "series_first_seen_in_a_failed_scrape",
            job: Job::Default,
            known_divergence: Some(
                "Prometheus' agent mode rolls back the series record of a series first seen in a failed scrape and then never forwards that series' samples; the agent forwards them",
            ),
            serve: |r| text(if r.n == 0 { "late 1\nbroken{\n" } else { "late 2\n" }),
        },
        Case {
            name: "protobuf_unasked",
            job: Job::Default,
            known_divergence: Some(
                "the agent does not parse the protobuf format (nor does it ask for it, like Prometheus 2.42 without native histograms); a target answering protobuf anyway is down for the agent",
            ),
            serve: |_| {
                reply(
                    200,
                    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
                    // One MetricFamily "p" of type GAUGE with one metric of value 1, length-delimited.
                    b"\x10\x0a\x01p\x18\x01\x22\x09\x12\x07\x09\x00\x00\x00\x00\x00\x00\xf0\x3f".to_vec(),
                )
            },
        },
    ]
}
