//! `agent validate` and `agent fmt` as a user runs them: the real binary, real files, exit
//! statuses, standard output and error (insta snapshots), and what they must not do (open the
//! agent's listener, create its storage, touch a file they could not format).

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn agent(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(args)
        .current_dir(dir)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the agent binary");
    if let Some(text) = stdin {
        // The agent may refuse its arguments and exit before reading its input (`fmt -w`
        // without a file): a broken pipe here is that, and its exit status tells.
        let written = child.stdin.take().unwrap().write_all(text.as_bytes());
        if let Err(e) = written {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
    }
    child.wait_with_output().expect("agent exits")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

const MESSY: &str = r#"// Scrape the node exporters, share them between the agents.
discovery.file "nodes" {
    files=["/etc/agent/targets/*.json"]
  refresh_interval = "1m" // often enough
}
prometheus.scrape "default" {
  targets = discovery.file.nodes.targets
  forward_to = [prometheus.remote_write.main.receiver,]
  scrape_interval = "15s"
  clustering { enabled = true }
}



prometheus.remote_write "main" {
  endpoint {
      url = "http://prometheus:9090/api/v1/write"
    headers = {"X-Scope-OrgID" = "team-a", "X-Other" = "b"}
  }
}
"#;

/// `agent validate` opens no listener (the default listen address is taken by the test and
/// it still succeeds, where `agent run` would fail), creates no storage directory, and
/// prints the components on success.
#[test]
fn validate_checks_without_running_anything() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.alloy"), MESSY).unwrap();
    let _taken = TcpListener::bind("127.0.0.1:12345");
    let out = agent(dir.path(), &["validate", "config.alloy"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!("validate_ok", text(&out.stdout));
    assert_eq!(text(&out.stderr), "");
    let entries: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        entries,
        ["config.alloy"],
        "nothing created next to the file"
    );
}

/// Every error, with file:line:col, on standard error; exit 1.
#[test]
fn validate_reports_every_error_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let broken = MESSY
        .replace("refresh_interval = \"1m\"", "refresh_interval = \"often\"")
        .replace("scrape_interval = \"15s\"", "scrape_intervals = \"15s\"")
        .replace("url = ", "uri = ");
    std::fs::write(dir.path().join("config.alloy"), broken).unwrap();
    let out = agent(dir.path(), &["validate", "config.alloy"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    insta::assert_snapshot!("validate_errors", text(&out.stderr));
}

/// `agent fmt FILE` prints the canonical form; `-t` says whether the file needs it; `-w`
/// rewrites it once, after which `-t` passes and `-w` leaves it untouched.
#[test]
fn fmt_prints_tests_and_rewrites_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.alloy");
    std::fs::write(&path, MESSY).unwrap();

    let out = agent(dir.path(), &["fmt", "config.alloy"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let formatted = text(&out.stdout);
    insta::assert_snapshot!("fmt_output", formatted);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        MESSY,
        "printing only"
    );

    let out = agent(dir.path(), &["fmt", "-t", "config.alloy"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "config.alloy: not formatted (run `agent fmt -w config.alloy`)\n"
    );

    let out = agent(dir.path(), &["fmt", "-w", "config.alloy"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "", "-w prints nothing");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), formatted);
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();

    let out = agent(dir.path(), &["fmt", "-t", "config.alloy"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::thread::sleep(std::time::Duration::from_millis(20));
    let out = agent(dir.path(), &["fmt", "-w", "config.alloy"], None);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        modified,
        "an already formatted file is not rewritten"
    );
    // The formatted file is still a valid configuration with the same components.
    let out = agent(dir.path(), &["validate", "config.alloy"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// Standard input in, canonical form out; a syntax error names file:line:col, exits 1 and
/// leaves the file as it was.
#[test]
fn fmt_reads_stdin_and_never_writes_a_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = agent(dir.path(), &["fmt"], Some("a {\nb=1\n}\n"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "a {\n\tb = 1\n}\n");

    let broken = "prometheus.scrape \"a\" {\n  targets = [1 2]\n}\n";
    let path = dir.path().join("broken.alloy");
    std::fs::write(&path, broken).unwrap();
    let out = agent(dir.path(), &["fmt", "-w", "broken.alloy"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "broken.alloy:2:16: expected `,` or `]` in list, found number 2\n"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), broken);

    let out = agent(dir.path(), &["fmt", "-w"], Some("a = 1\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("-w needs a file"));
}
