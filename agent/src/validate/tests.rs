use super::*;

/// No environment variables; host name `test-host`.
struct NoEnv;

impl Environment for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }

    fn hostname(&self) -> String {
        "test-host".into()
    }
}

fn run(src: &str) -> Outcome {
    validate_source(src, "config.alloy", &NoEnv)
}

fn invalid(src: &str) -> String {
    match run(src) {
        Outcome::Invalid(text) => text,
        Outcome::Valid(text) => panic!("expected errors, got: {text}"),
    }
}

#[test]
fn a_valid_file_lists_its_components() {
    let src = r#"
discovery.file "nodes" {
  files = ["/etc/agent/targets/*.json"]
}

prometheus.scrape "default" {
  targets    = discovery.file.nodes.targets
  forward_to = [prometheus.remote_write.main.receiver]
  clustering { enabled = true }
}

prometheus.remote_write "main" {
  endpoint { url = "http://prometheus:9090/api/v1/write" }
}
"#;
    let Outcome::Valid(text) = run(src) else {
        panic!("{:?}", run(src))
    };
    insta::assert_snapshot!("valid", text);
}

/// One error per broken component, all at once, each with its line and a caret; components
/// that refer to a broken one are not reported again.
#[test]
fn every_component_error_is_reported_at_once() {
    let src = r#"prometheus.scrape "a" {
  targets         = [{"__address__" = "127.0.0.1:9100"}]
  forward_to      = [prometheus.remote_write.main.receiver]
  scrape_intervall = "10s"
}

prometheus.scrape "b" {
  targets         = discovery.file.missing.targets
  forward_to      = []
}

prometheus.remote_write "main" {
  endpoint {
    url            = "http://prometheus:9090/api/v1/write"
    remote_timeout = "soon"
  }
}

loki.write "logs" { }

discovery.relabel "x" {
  targets = [{"__address__" = to_lower(sys.env())}]
}

prometheus.remote_write "main" {
  endpoint { url = "http://other:9090/api/v1/write" }
}
"#;
    insta::assert_snapshot!("component_errors", invalid(src));
}

/// Parsing goes on after a syntax error: errors in two blocks and a stray character are
/// all reported; meaning is not checked while the syntax is broken.
#[test]
fn every_syntax_error_is_reported_at_once() {
    let src = "prometheus.scrape \"a\" {\n  targets = [1 2]\n}\n\nprometheus.scrape \"b\" {\n  forward_to = [\n}\n\ndiscovery.file \"c\" {\n  files = [\"a.json\"] ; \n}\n";
    insta::assert_snapshot!("syntax_errors", invalid(src));
}

#[test]
fn a_missing_certificate_file_is_reported_at_its_component() {
    let src = r#"prometheus.scrape "secure" {
  targets    = [{"__address__" = "127.0.0.1:9100"}]
  forward_to = []
  scheme     = "https"
  tls_config {
    ca_file = "/nonexistent/ca.pem"
  }
}
"#;
    let text = invalid(src);
    assert!(
        text.starts_with("config.alloy:1:1: prometheus.scrape.secure: "),
        "{text}"
    );
    assert!(text.contains("/nonexistent/ca.pem"), "{text}");
    assert!(text.ends_with("config.alloy: 1 error; the configuration is not valid\n"));
}

#[test]
fn an_unreadable_file_is_one_error() {
    let out = validate_file(Path::new("/nonexistent/config.alloy"), &NoEnv);
    let Outcome::Invalid(text) = out else {
        panic!("{out:?}")
    };
    assert!(
        text.starts_with("/nonexistent/config.alloy: cannot read config file: "),
        "{text}"
    );
}
