use agent::http_client::{
    Authorization, BasicAuth, ClientSettings, HttpClient, Secret, TlsVersion,
};

fn field_of(s: &ClientSettings) -> &'static str {
    s.validate().unwrap_err().field
}

#[test]
fn defaults_follow_redirects_and_enable_http2() {
    let s = ClientSettings::default();
    assert!(s.follow_redirects && s.enable_http2 && !s.proxy_from_environment);
    assert!(s.validate().is_ok());
    assert_eq!(Authorization::default().type_, "Bearer");
}

#[test]
fn conflicting_auth_settings_name_the_fields() {
    let basic = Some(BasicAuth {
        username: "u".into(),
        password: Some(Secret::new("p")),
        password_file: None,
    });
    let s = ClientSettings {
        basic_auth: basic.clone(),
        bearer_token: Some(Secret::new("t")),
        ..Default::default()
    };
    let e = s.validate().unwrap_err();
    assert_eq!(e.field, "basic_auth");
    assert!(e.message.contains("basic_auth and bearer_token"), "{e}");

    let s = ClientSettings {
        bearer_token: Some(Secret::new("t")),
        bearer_token_file: Some("/f".into()),
        ..Default::default()
    };
    assert_eq!(field_of(&s), "bearer_token_file");

    let s = ClientSettings {
        basic_auth: basic.clone(),
        authorization: Some(Authorization::default()),
        ..Default::default()
    };
    assert_eq!(field_of(&s), "authorization");

    let s = ClientSettings {
        bearer_token_file: Some("/f".into()),
        authorization: Some(Authorization::default()),
        ..Default::default()
    };
    assert_eq!(field_of(&s), "authorization");

    let mut b = basic.clone().unwrap();
    b.password_file = Some("/pw".into());
    let s = ClientSettings {
        basic_auth: Some(b),
        ..Default::default()
    };
    assert_eq!(field_of(&s), "basic_auth.password_file");

    let a = Authorization {
        type_: "Bearer".into(),
        credentials: Some(Secret::new("c")),
        credentials_file: Some("/c".into()),
    };
    assert_eq!(
        field_of(&ClientSettings {
            authorization: Some(a),
            ..Default::default()
        }),
        "authorization.credentials_file"
    );
    let a = Authorization {
        type_: "basic".into(),
        ..Default::default()
    };
    assert_eq!(
        field_of(&ClientSettings {
            authorization: Some(a),
            ..Default::default()
        }),
        "authorization.type"
    );
}

#[test]
fn proxy_rules_name_the_fields() {
    let s = ClientSettings {
        no_proxy: Some("127.0.0.1".into()),
        ..Default::default()
    };
    assert_eq!(field_of(&s), "no_proxy");
    let s = ClientSettings {
        proxy_url: Some("socks5://h:1".into()),
        ..Default::default()
    };
    assert_eq!(field_of(&s), "proxy_url");
    let s = ClientSettings {
        proxy_url: Some("not a url".into()),
        ..Default::default()
    };
    assert_eq!(field_of(&s), "proxy_url");
    let s = ClientSettings {
        proxy_url: Some("http://h:1".into()),
        proxy_from_environment: true,
        ..Default::default()
    };
    assert_eq!(field_of(&s), "proxy_from_environment");
    let s = ClientSettings {
        proxy_url: Some("http://h:1".into()),
        no_proxy: Some("a.com".into()),
        ..Default::default()
    };
    assert!(s.validate().is_ok());
}

#[test]
fn tls_rules_name_the_fields() {
    let mut s = ClientSettings::default();
    s.tls.ca_pem = Some("x".into());
    s.tls.ca_file = Some("/x".into());
    assert_eq!(field_of(&s), "tls_config.ca_file");
    let mut s = ClientSettings::default();
    s.tls.cert_file = Some("/c".into());
    assert_eq!(field_of(&s), "tls_config.key_file");
    let mut s = ClientSettings::default();
    s.tls.key_pem = Some(Secret::new("k"));
    assert_eq!(field_of(&s), "tls_config.cert_file");
    let mut s = ClientSettings::default();
    s.tls.server_name = Some("bad name!".into());
    assert_eq!(field_of(&s), "tls_config.server_name");
}

#[test]
fn reserved_headers_are_rejected() {
    let mut s = ClientSettings::default();
    s.headers.insert("Authorization".into(), Secret::new("x"));
    let e = s.validate().unwrap_err();
    assert_eq!(e.field, "http_headers");
    assert!(e.message.contains("Authorization"));
    // HttpClient::new reports validation errors as Config errors with the field.
    let err = HttpClient::new(&s, "t").unwrap_err();
    assert!(err.to_string().starts_with("http_headers: "), "{err}");
}

#[test]
fn tls_version_names_parse_and_old_versions_map_to_tls12() {
    assert_eq!(
        TlsVersion::parse("TLS13").unwrap(),
        (TlsVersion::Tls13, None)
    );
    assert_eq!(TlsVersion::parse("TLS12").unwrap().0, TlsVersion::Tls12);
    let (v, note) = TlsVersion::parse("TLS10").unwrap();
    assert_eq!(v, TlsVersion::Tls12);
    assert!(note
        .unwrap()
        .contains("rustls supports only TLS 1.2 and 1.3"));
    assert_eq!(
        TlsVersion::parse("SSL3").unwrap_err().field,
        "tls_config.min_version"
    );
    assert_eq!(
        serde_json::to_string(&TlsVersion::Tls13).unwrap(),
        "\"TLS13\""
    );
}

#[test]
fn changed_secret_changes_serialized_form() {
    let a = ClientSettings {
        bearer_token: Some(Secret::new("one")),
        ..Default::default()
    };
    let b = ClientSettings {
        bearer_token: Some(Secret::new("two")),
        ..Default::default()
    };
    let (ja, jb) = (
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap(),
    );
    assert_ne!(ja, jb);
    assert!(!ja.contains("one") && !jb.contains("two"));
    assert_ne!(a, b);
}
