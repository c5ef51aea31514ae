mod http_client_support;

use std::time::Duration;

use agent::http_client::{BasicAuth, ClientSettings, ErrorKind, HttpClient, Secret};
use bytes::Bytes;
use http_client_support::*;

#[tokio::test]
async fn redirects_are_followed_by_default() {
    let addr = spawn_http().await;
    let client = HttpClient::new(&ClientSettings::default(), "t").unwrap();
    let resp = get(&client, &format!("http://{addr}/redirect/3"))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(json(&resp)["path"], "/redirect/0");
    assert_eq!(resp.url, format!("http://{addr}/redirect/0"));
}

#[tokio::test]
async fn follow_redirects_false_returns_the_3xx() {
    let addr = spawn_http().await;
    let s = ClientSettings {
        follow_redirects: false,
        ..ClientSettings::default()
    };
    let client = HttpClient::new(&s, "t").unwrap();
    let resp = get(&client, &format!("http://{addr}/redirect/1"))
        .await
        .unwrap();
    assert_eq!(resp.status, 302);
    assert_eq!(resp.headers["location"], "/redirect/0");
}

#[tokio::test]
async fn more_than_ten_redirects_is_an_error() {
    let addr = spawn_http().await;
    let client = HttpClient::new(&ClientSettings::default(), "t").unwrap();
    assert_eq!(
        get(&client, &format!("http://{addr}/redirect/10"))
            .await
            .unwrap()
            .status,
        200
    );
    let err = get(&client, &format!("http://{addr}/loop"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Redirect);
    assert!(
        err.to_string().contains("stopped after 10 redirects"),
        "{err}"
    );
}

#[tokio::test]
async fn post_redirect_is_not_followed() {
    let addr = spawn_http().await;
    let client = HttpClient::new(&ClientSettings::default(), "t").unwrap();
    let req = http::Request::post(format!("http://{addr}/redirect/1"))
        .body(Bytes::from("x"))
        .unwrap();
    let resp = client
        .send(req, Duration::from_secs(5), 1024)
        .await
        .unwrap();
    assert_eq!(resp.status, 302);
}

#[tokio::test]
async fn body_over_limit_is_rejected() {
    let addr = spawn_http().await;
    let client = HttpClient::new(&ClientSettings::default(), "t").unwrap();
    let req = || {
        http::Request::get(format!("http://{addr}/big"))
            .body(Bytes::new())
            .unwrap()
    };
    let err = client
        .send(req(), Duration::from_secs(5), 1000)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BodyTooLarge);
    assert!(
        err.to_string().contains("exceeds the limit of 1000 bytes"),
        "{err}"
    );
    assert_eq!(
        client
            .send(req(), Duration::from_secs(5), 100_000)
            .await
            .unwrap()
            .body
            .len(),
        100_000
    );
}

#[tokio::test]
async fn timeout_covers_the_whole_exchange() {
    let addr = spawn_http().await;
    let client = HttpClient::new(&ClientSettings::default(), "t").unwrap();
    let req = http::Request::get(format!("http://{addr}/slow"))
        .body(Bytes::new())
        .unwrap();
    let started = std::time::Instant::now();
    let err = client
        .send(req, Duration::from_millis(300), 1024)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(err.to_string().contains("timed out after 300ms"), "{err}");
}

#[tokio::test]
async fn connection_refused_is_a_connect_error() {
    let client = HttpClient::new(&ClientSettings::default(), "t").unwrap();
    let err = get(&client, "http://127.0.0.1:1/metrics")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert!(
        err.to_string()
            .starts_with("http://127.0.0.1:1/metrics: connection failed: "),
        "{err}"
    );
}

#[tokio::test]
async fn plain_http_goes_to_proxy_in_absolute_form_with_proxy_auth() {
    let addr = spawn_http().await;
    let proxy = spawn_proxy().await;
    let s = ClientSettings {
        proxy_url: Some(format!("http://pu:pp@{}", proxy.addr)),
        ..ClientSettings::default()
    };
    let client = HttpClient::new(&s, "t").unwrap();
    let resp = get(&client, &format!("http://{addr}/via-proxy"))
        .await
        .unwrap();
    assert_eq!(json(&resp)["path"], "/via-proxy");
    let seen = proxy.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].starts_with(&format!("GET http://{addr}/via-proxy HTTP/1.1")),
        "{seen:?}"
    );
    assert!(
        seen[0].ends_with("proxy-authorization: Basic cHU6cHA="),
        "{seen:?}"
    );
}

#[tokio::test]
async fn https_goes_through_a_connect_tunnel() {
    let ca = Ca::new("ca");
    let srv = spawn_https(server_config(&ca.server_leaf(), None, false)).await;
    let proxy = spawn_proxy().await;
    let mut s = ClientSettings {
        proxy_url: Some(format!("http://{}", proxy.addr)),
        ..ClientSettings::default()
    };
    s.tls.ca_pem = Some(ca.pem.clone());
    let client = HttpClient::new(&s, "t").unwrap();
    let j = json(&get(&client, &srv.url("/tunneled")).await.unwrap());
    assert_eq!(j["path"], "/tunneled");
    assert_eq!(j["alpn"], "h2");
    let seen = proxy.seen.lock().unwrap().clone();
    assert_eq!(seen, vec![format!("CONNECT {} HTTP/1.1", srv.addr)]);
}

#[tokio::test]
async fn no_proxy_bypasses_an_unreachable_proxy() {
    let addr = spawn_http().await;
    let url = format!("http://{addr}/direct");
    let mut s = ClientSettings {
        proxy_url: Some("http://127.0.0.1:1".into()),
        ..ClientSettings::default()
    };
    let via_proxy = HttpClient::new(&s, "t").unwrap();
    let err = get(&via_proxy, &url).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect);
    assert!(
        err.to_string()
            .contains("cannot connect to proxy http://127.0.0.1:1"),
        "{err}"
    );

    s.no_proxy = Some("10.0.0.0/8, 127.0.0.1".into());
    let bypass = HttpClient::new(&s, "t").unwrap();
    assert_eq!(json(&get(&bypass, &url).await.unwrap())["path"], "/direct");
    s.no_proxy = Some("127.0.0.0/8".into());
    let cidr = HttpClient::new(&s, "t").unwrap();
    assert_eq!(get(&cidr, &url).await.unwrap().status, 200);
}

#[tokio::test]
async fn credentials_are_dropped_when_a_redirect_changes_host() {
    // "localhost" and "127.0.0.1" reach the same server but are different hosts.
    let addr = spawn_http().await;
    let port = addr.port();
    let mut s = ClientSettings::default();
    s.basic_auth = Some(BasicAuth {
        username: "u".into(),
        password: Some(Secret::new("p")),
        password_file: None,
    });
    s.headers.insert("X-Tenant".into(), Secret::new("t1"));
    let client = HttpClient::new(&s, "t").unwrap();
    let same = get(
        &client,
        &format!("http://127.0.0.1:{port}/to?url=http://127.0.0.1:{port}/same"),
    )
    .await
    .unwrap();
    assert_eq!(json(&same)["path"], "/same");
    assert!(json(&same)["authorization"].is_string());
    let other = get(
        &client,
        &format!("http://127.0.0.1:{port}/to?url=http://localhost:{port}/other"),
    )
    .await
    .unwrap();
    let j = json(&other);
    assert_eq!(j["path"], "/other");
    assert!(j["authorization"].is_null(), "{j}");
    assert_eq!(j["headers"]["x-tenant"], "t1");
}
