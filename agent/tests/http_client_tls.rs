mod http_client_support;

use std::time::Duration;

use agent::http_client::{ClientSettings, ErrorKind, HttpClient, Secret, TlsVersion};
use http_client_support::*;

fn settings_with_ca_file(path: &str) -> ClientSettings {
    let mut s = ClientSettings::default();
    s.tls.ca_file = Some(path.to_owned());
    s
}

#[tokio::test]
async fn https_with_ca_file_negotiates_h2_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("ca1");
    let srv = spawn_https(server_config(&ca.server_leaf(), None, false)).await;
    let client = HttpClient::new(
        &settings_with_ca_file(&write_file(dir.path(), "ca.pem", &ca.pem)),
        "test/1",
    )
    .unwrap();
    let resp = get(&client, &srv.url("/m")).await.unwrap();
    assert_eq!(resp.status, 200);
    let j = json(&resp);
    assert_eq!(j["alpn"], "h2");
    assert_eq!(j["version"], "HTTP/2.0");
    assert_eq!(j["headers"]["user-agent"], "test/1");
}

#[tokio::test]
async fn enable_http2_false_offers_only_http11() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("ca1");
    let srv = spawn_https(server_config(&ca.server_leaf(), None, false)).await;
    let mut s = settings_with_ca_file(&write_file(dir.path(), "ca.pem", &ca.pem));
    s.enable_http2 = false;
    let client = HttpClient::new(&s, "test").unwrap();
    let j = json(&get(&client, &srv.url("/m")).await.unwrap());
    assert_eq!(j["alpn"], "http/1.1");
    assert_eq!(j["version"], "HTTP/1.1");
}

#[tokio::test]
async fn same_client_speaks_http_and_https() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("ca1");
    let srv = spawn_https(server_config(&ca.server_leaf(), None, false)).await;
    let plain = spawn_http().await;
    let client = HttpClient::new(
        &settings_with_ca_file(&write_file(dir.path(), "ca.pem", &ca.pem)),
        "t",
    )
    .unwrap();
    assert_eq!(get(&client, &srv.url("/a")).await.unwrap().status, 200);
    assert_eq!(
        get(&client, &format!("http://{plain}/b"))
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn server_cert_from_other_ca_is_refused_with_issuer_hint() {
    let dir = tempfile::tempdir().unwrap();
    let trusted = Ca::new("trusted");
    let other = Ca::new("other");
    let srv = spawn_https(server_config(&other.server_leaf(), None, false)).await;
    let client = HttpClient::new(
        &settings_with_ca_file(&write_file(dir.path(), "ca.pem", &trusted.pem)),
        "t",
    )
    .unwrap();
    let err = get(&client, &srv.url("/metrics")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "https://{}/metrics: TLS handshake failed: ",
            srv.addr
        )),
        "{msg}"
    );
    assert!(msg.contains("UnknownIssuer"), "{msg}");
    assert!(
        msg.contains("is tls_config.ca_file the CA that signed the server certificate?"),
        "{msg}"
    );
}

#[tokio::test]
async fn insecure_skip_verify_accepts_unknown_issuer() {
    let other = Ca::new("other");
    let srv = spawn_https(server_config(&other.server_leaf(), None, false)).await;
    let mut s = ClientSettings::default();
    s.tls.insecure_skip_verify = true;
    let client = HttpClient::new(&s, "t").unwrap();
    assert_eq!(get(&client, &srv.url("/")).await.unwrap().status, 200);
}

#[tokio::test]
async fn server_name_overrides_the_url_host_for_verification() {
    let ca = Ca::new("ca");
    let srv = spawn_https(server_config(
        &ca.issue(&["example.test"], false),
        None,
        false,
    ))
    .await;
    let mut s = ClientSettings::default();
    s.tls.ca_pem = Some(ca.pem.clone());
    let without = HttpClient::new(&s, "t").unwrap();
    let err = get(&without, &srv.url("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls);
    assert!(err.to_string().contains("tls_config.server_name"), "{err}");
    s.tls.server_name = Some("example.test".into());
    let with = HttpClient::new(&s, "t").unwrap();
    assert_eq!(get(&with, &srv.url("/")).await.unwrap().status, 200);
}

#[tokio::test]
async fn mtls_server_refuses_without_client_cert_and_accepts_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("ca");
    let srv = spawn_https(server_config(&ca.server_leaf(), Some(&ca), false)).await;
    let mut s = settings_with_ca_file(&write_file(dir.path(), "ca.pem", &ca.pem));
    let without = HttpClient::new(&s, "t").unwrap();
    let err = get(&without, &srv.url("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert!(
        err.to_string().contains("requires a client certificate"),
        "{err}"
    );

    let client_leaf = ca.issue(&["client"], true);
    s.tls.cert_file = Some(write_file(dir.path(), "client.pem", &client_leaf.cert_pem));
    s.tls.key_file = Some(write_file(dir.path(), "client.key", &client_leaf.key_pem));
    let with = HttpClient::new(&s, "t").unwrap();
    let j = json(&get(&with, &srv.url("/")).await.unwrap());
    assert_eq!(j["client_cert"], true);

    // The same with inline PEM (key as a secret).
    s.tls.cert_file = None;
    s.tls.key_file = None;
    s.tls.cert_pem = Some(client_leaf.cert_pem.clone());
    s.tls.key_pem = Some(Secret::new(client_leaf.key_pem.clone()));
    let inline = HttpClient::new(&s, "t").unwrap();
    assert_eq!(
        json(&get(&inline, &srv.url("/")).await.unwrap())["client_cert"],
        true
    );
}

#[tokio::test]
async fn min_version_tls13_fails_against_tls12_only_server() {
    let ca = Ca::new("ca");
    let srv = spawn_https(server_config(&ca.server_leaf(), None, true)).await;
    let mut s = ClientSettings::default();
    s.tls.ca_pem = Some(ca.pem.clone());
    let default = HttpClient::new(&s, "t").unwrap();
    assert_eq!(
        json(&get(&default, &srv.url("/")).await.unwrap())["tls_version"],
        "TLSv1_2"
    );
    s.tls.min_version = Some(TlsVersion::Tls13);
    let strict = HttpClient::new(&s, "t").unwrap();
    let err = get(&strict, &srv.url("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert!(err.to_string().contains("min_version TLS13"), "{err}");
}

#[tokio::test]
async fn rewritten_ca_file_is_used_for_new_connections_without_new_client() {
    let dir = tempfile::tempdir().unwrap();
    let ca1 = Ca::new("ca1");
    let ca2 = Ca::new("ca2");
    let ca_path = write_file(dir.path(), "ca.pem", &ca1.pem);
    let srv = spawn_https(server_config(&ca1.server_leaf(), None, false)).await;
    let mut s = settings_with_ca_file(&ca_path);
    s.enable_http2 = false;
    let client = HttpClient::new(&s, "t").unwrap();
    // "connection: close" keeps every request on a new connection.
    let close = [("connection", "close")];
    assert_eq!(
        get_with(&client, &srv.url("/"), &close)
            .await
            .unwrap()
            .status,
        200
    );

    *srv.config.lock().unwrap() = server_config(&ca2.server_leaf(), None, false);
    let err = get_with(&client, &srv.url("/"), &close).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");

    // An invalid rewrite keeps the previous config (no crash, warning logged).
    std::fs::write(&ca_path, "garbage").unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let err = get_with(&client, &srv.url("/"), &close).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");

    std::fs::write(&ca_path, &ca2.pem).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        get_with(&client, &srv.url("/"), &close)
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn construction_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings_with_ca_file("/nonexistent/ca.pem");
    let err = HttpClient::new(&s, "t").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(
        err.to_string()
            .starts_with("tls_config: cannot read ca_file \"/nonexistent/ca.pem\": "),
        "{err}"
    );

    let ca = Ca::new("ca");
    let mut s = settings_with_ca_file(&write_file(dir.path(), "ca.pem", &ca.pem));
    let bad = write_file(dir.path(), "cert.pem", "not a pem");
    s.tls.cert_file = Some(bad.clone());
    s.tls.key_file = Some(write_file(dir.path(), "key.pem", &ca.server_leaf().key_pem));
    let err = HttpClient::new(&s, "t").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("tls_config: cert_file {bad:?} contains no PEM certificate")
    );
}
