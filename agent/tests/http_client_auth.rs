mod http_client_support;

use agent::http_client::{Authorization, BasicAuth, ClientSettings, ErrorKind, HttpClient, Secret};
use base64::Engine as _;
use http_client_support::*;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn basic_auth_with_password_is_sent() {
    let addr = spawn_http().await;
    let mut s = ClientSettings::default();
    s.basic_auth = Some(BasicAuth {
        username: "alice".into(),
        password: Some(Secret::new("pw1")),
        password_file: None,
    });
    let client = HttpClient::new(&s, "t").unwrap();
    let j = json(&get(&client, &format!("http://{addr}/")).await.unwrap());
    assert_eq!(j["authorization"], format!("Basic {}", b64("alice:pw1")));
}

#[tokio::test]
async fn rewritten_password_file_is_used_by_the_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let addr = spawn_http().await;
    let pw = write_file(dir.path(), "pw", "first\n");
    let mut s = ClientSettings::default();
    s.basic_auth = Some(BasicAuth {
        username: "bob".into(),
        password: None,
        password_file: Some(pw.clone()),
    });
    let client = HttpClient::new(&s, "t").unwrap();
    let url = format!("http://{addr}/");
    assert_eq!(
        json(&get(&client, &url).await.unwrap())["authorization"],
        format!("Basic {}", b64("bob:first"))
    );
    std::fs::write(&pw, "second").unwrap();
    assert_eq!(
        json(&get(&client, &url).await.unwrap())["authorization"],
        format!("Basic {}", b64("bob:second"))
    );
}

#[tokio::test]
async fn missing_password_file_fails_construction_naming_the_file() {
    let mut s = ClientSettings::default();
    s.basic_auth = Some(BasicAuth {
        username: "u".into(),
        password: None,
        password_file: Some("/nope/pw".into()),
    });
    let err = HttpClient::new(&s, "t").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(
        err.to_string()
            .starts_with("cannot read basic_auth.password_file \"/nope/pw\""),
        "{err}"
    );
}

#[tokio::test]
async fn bearer_token_file_is_sent_and_reread() {
    let dir = tempfile::tempdir().unwrap();
    let addr = spawn_http().await;
    let f = write_file(dir.path(), "token", "tok-1\n");
    let mut s = ClientSettings::default();
    s.bearer_token_file = Some(f.clone());
    let client = HttpClient::new(&s, "t").unwrap();
    let url = format!("http://{addr}/");
    assert_eq!(
        json(&get(&client, &url).await.unwrap())["authorization"],
        "Bearer tok-1"
    );
    std::fs::write(&f, "tok-2").unwrap();
    assert_eq!(
        json(&get(&client, &url).await.unwrap())["authorization"],
        "Bearer tok-2"
    );
}

#[tokio::test]
async fn bearer_token_inline_is_sent() {
    let addr = spawn_http().await;
    let mut s = ClientSettings::default();
    s.bearer_token = Some(Secret::new("abc"));
    let client = HttpClient::new(&s, "t").unwrap();
    assert_eq!(
        json(&get(&client, &format!("http://{addr}/")).await.unwrap())["authorization"],
        "Bearer abc"
    );
}

#[tokio::test]
async fn authorization_with_custom_type_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let addr = spawn_http().await;
    let mut s = ClientSettings::default();
    s.authorization = Some(Authorization {
        type_: "Token".into(),
        credentials: Some(Secret::new("xyz")),
        credentials_file: None,
    });
    let client = HttpClient::new(&s, "t").unwrap();
    let url = format!("http://{addr}/");
    assert_eq!(
        json(&get(&client, &url).await.unwrap())["authorization"],
        "Token xyz"
    );
    s.authorization = Some(Authorization {
        credentials: None,
        credentials_file: Some(write_file(dir.path(), "c", "fromfile")),
        ..Authorization::default()
    });
    let client = HttpClient::new(&s, "t").unwrap();
    assert_eq!(
        json(&get(&client, &url).await.unwrap())["authorization"],
        "Bearer fromfile"
    );
}

#[tokio::test]
async fn extra_headers_are_sent() {
    let addr = spawn_http().await;
    let mut s = ClientSettings::default();
    s.headers
        .insert("X-Scope-OrgID".into(), Secret::new("tenant-1"));
    s.headers.insert("X-Other".into(), Secret::new("v"));
    let client = HttpClient::new(&s, "t").unwrap();
    let j = json(&get(&client, &format!("http://{addr}/")).await.unwrap());
    assert_eq!(j["headers"]["x-scope-orgid"], "tenant-1");
    assert_eq!(j["headers"]["x-other"], "v");
}

#[tokio::test]
async fn secrets_never_appear_in_debug_serialize_or_errors() {
    const PW: &str = "hunter2-very-secret";
    let addr = spawn_http().await;
    let other = Ca::new("other");
    let tls_srv = spawn_https(server_config(&other.server_leaf(), None, false)).await;
    let trusted = Ca::new("trusted");
    let leaf = trusted.issue(&["client"], true);
    let mut s = ClientSettings::default();
    s.basic_auth = Some(BasicAuth {
        username: "alice".into(),
        password: Some(Secret::new(PW)),
        password_file: None,
    });
    s.headers.insert("X-Key".into(), Secret::new(PW));
    s.tls.ca_pem = Some(trusted.pem.clone());
    s.tls.cert_pem = Some(leaf.cert_pem.clone());
    s.tls.key_pem = Some(Secret::new(leaf.key_pem.clone()));
    let encoded = b64(&format!("alice:{PW}"));
    let forbidden = [PW, encoded.as_str(), leaf.key_pem.lines().nth(1).unwrap()];
    let check = |text: &str| {
        for f in forbidden {
            assert!(!text.contains(f), "secret leaked in {text}");
        }
    };
    check(&format!("{s:?}"));
    let ser = serde_json::to_string(&s).unwrap();
    check(&ser);
    assert!(ser.contains("(secret xxh64:"), "{ser}");
    let client = HttpClient::new(&s, "t").unwrap();
    check(&format!("{client:?}"));

    // The 401 body echoes the Authorization header; the error must not.
    let resp = get(&client, &format!("http://{addr}/status/401?token=abc"))
        .await
        .unwrap();
    assert_eq!(resp.status, 401);
    let err = resp.error_for_status().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Status);
    assert_eq!(
        err.to_string(),
        format!(
            "http://{addr}/status/401?token=xxxxx: server returned HTTP status 401 Unauthorized"
        )
    );
    check(&err.to_string());
    check(&format!("{err:?}"));

    let err = get(&client, &tls_srv.url("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls);
    check(&err.to_string());
    check(&format!("{err:?}"));
}
