//! The Kubernetes API client of a component, built with kube-rs: in-cluster (the pod's service
//! account token and CA, `KUBERNETES_SERVICE_HOST`/`PORT`) by default, a kubeconfig file with
//! `kubeconfig_file`, or `api_server` with the component's client settings (bearer token or
//! file, basic auth, authorization, TLS files or PEM, headers). Errors name what is missing and
//! never print a secret.

use std::time::Duration;

use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::config::KubernetesApiConfig;
use crate::http_client::ClientSettings;

/// Where in-cluster pods find their namespace (Prometheus reads the same file for
/// `own_namespace`).
pub const NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Connecting to the API server gives up after this long (then the watcher backs off and
/// retries).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The agent's pod namespace, for `namespaces { own_namespace = true }`.
pub fn own_namespace() -> Result<String, String> {
    let ns = std::fs::read_to_string(NAMESPACE_FILE)
        .map_err(|e| format!("cannot determine the pod's namespace from {NAMESPACE_FILE}: {e}"))?;
    let ns = ns.trim().to_string();
    if ns.is_empty() {
        return Err(format!(
            "{NAMESPACE_FILE} is empty; cannot determine the pod's namespace"
        ));
    }
    Ok(ns)
}

/// The kube-rs client for `api`.
pub async fn client(api: &KubernetesApiConfig) -> Result<Client, String> {
    // kube-rs builds its TLS config on the process-wide rustls provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = if let Some(url) = &api.api_server {
        let uri = url
            .parse::<http::Uri>()
            .map_err(|e| format!("invalid api_server {url:?}: {e}"))?;
        let mut c = Config::new(uri);
        apply_settings(&mut c, &api.client)?;
        c
    } else if let Some(path) = &api.kubeconfig_file {
        let kc = Kubeconfig::read_from(path)
            .map_err(|e| format!("cannot read kubeconfig_file {path:?}: {e}"))?;
        Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .map_err(|e| format!("kubeconfig_file {path:?} is not usable: {e}"))?
    } else {
        Config::incluster().map_err(|e| {
            format!("no in-cluster configuration ({e}); outside a pod set api_server or kubeconfig_file")
        })?
    };
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    Client::try_from(config).map_err(|e| format!("cannot build the Kubernetes client: {e}"))
}

fn read(path: &str, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {what} {path:?}: {e}"))
}

/// The component's client settings on a kube-rs config for `api_server`.
fn apply_settings(c: &mut Config, s: &ClientSettings) -> Result<(), String> {
    let mut auth = AuthInfo::default();
    if let Some(t) = &s.bearer_token {
        auth.token = Some(t.expose().to_string().into());
    }
    if let Some(f) = &s.bearer_token_file {
        auth.token_file = Some(f.clone());
    }
    if let Some(b) = &s.basic_auth {
        auth.username = Some(b.username.clone());
        let password = match (&b.password, &b.password_file) {
            (Some(p), _) => p.expose().to_string(),
            (None, Some(f)) => String::from_utf8_lossy(&read(f, "password_file")?)
                .trim()
                .to_string(),
            (None, None) => String::new(),
        };
        auth.password = Some(password.into());
    }
    if let Some(a) = &s.authorization {
        let credentials = match (&a.credentials, &a.credentials_file) {
            (Some(c), _) => c.expose().to_string(),
            (None, Some(f)) => String::from_utf8_lossy(&read(f, "credentials_file")?)
                .trim()
                .to_string(),
            (None, None) => String::new(),
        };
        if a.type_.eq_ignore_ascii_case("bearer") {
            auth.token = Some(credentials.into());
        } else {
            let value = http::HeaderValue::from_str(&format!("{} {credentials}", a.type_))
                .map_err(|_| {
                    "authorization credentials are not a valid header value".to_string()
                })?;
            c.headers.push((http::header::AUTHORIZATION, value));
        }
    }
    for (name, value) in &s.headers {
        let n = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        let v = http::HeaderValue::from_str(value.expose())
            .map_err(|_| format!("header {name:?} has an invalid value"))?;
        c.headers.push((n, v));
    }
    let tls = &s.tls;
    let ca_pem = match (&tls.ca_pem, &tls.ca_file) {
        (Some(p), _) => Some(p.as_bytes().to_vec()),
        (None, Some(f)) => Some(read(f, "ca_file")?),
        (None, None) => None,
    };
    if let Some(pem) = ca_pem {
        let certs: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(&pem)
            .map(|c| c.map(|c| c.to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("tls_config CA is not PEM: {e}"))?;
        if certs.is_empty() {
            return Err("tls_config CA holds no certificate".into());
        }
        c.root_cert = Some(certs);
    }
    auth.client_certificate = tls.cert_file.clone();
    auth.client_key = tls.key_file.clone();
    if let Some(pem) = &tls.cert_pem {
        auth.client_certificate_data = Some(base64_encode(pem.as_bytes()));
    }
    if let Some(pem) = &tls.key_pem {
        auth.client_key_data = Some(base64_encode(pem.expose().as_bytes()).into());
    }
    c.accept_invalid_certs = tls.insecure_skip_verify;
    c.tls_server_name = tls.server_name.clone();
    c.auth_info = auth;
    Ok(())
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}
