//! rustls client configuration from [`TlsSettings`], and change detection of
//! the TLS files for rotation.

use std::sync::Arc;
use std::time::SystemTime;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{self, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::error::{ClientError, ErrorKind};
use super::settings::{TlsSettings, TlsVersion};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(crypto::ring::default_provider())
}

fn config_err(message: String) -> ClientError {
    ClientError::new(ErrorKind::Config, format!("tls_config: {message}"))
}

/// Reads a PEM source: inline text, or a file (the error names the file).
fn read_source(
    field: &str,
    pem: Option<&str>,
    file: Option<&str>,
) -> Result<Option<(Vec<u8>, String)>, ClientError> {
    if let Some(p) = pem {
        return Ok(Some((p.as_bytes().to_vec(), format!("{field}_pem"))));
    }
    if let Some(f) = file {
        let bytes = std::fs::read(f)
            .map_err(|e| config_err(format!("cannot read {field}_file {f:?}: {e}")))?;
        return Ok(Some((bytes, format!("{field}_file {f:?}"))));
    }
    Ok(None)
}

fn parse_certs(bytes: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| config_err(format!("{what} is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(config_err(format!("{what} contains no PEM certificate")));
    }
    Ok(certs)
}

fn root_store(tls: &TlsSettings) -> Result<RootCertStore, ClientError> {
    let mut roots = RootCertStore::empty();
    match read_source("ca", tls.ca_pem.as_deref(), tls.ca_file.as_deref())? {
        Some((bytes, what)) => {
            for cert in parse_certs(&bytes, &what)? {
                roots.add(cert).map_err(|e| {
                    config_err(format!("{what} holds an unusable CA certificate: {e}"))
                })?;
            }
        }
        None => roots = system_roots().clone(),
    }
    Ok(roots)
}

/// The system's CA certificates, read once per process: every client without `ca_*` (and
/// the load-time check of each) shares them instead of parsing the system bundle again.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: std::sync::OnceLock<RootCertStore> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::warn!("http_client: loading system CA certificates: {e}");
        }
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            tracing::warn!(
                "http_client: no system CA certificates found ({ignored} unusable); https targets need tls_config.ca_file"
            );
        }
        roots
    })
}

fn client_identity(
    tls: &TlsSettings,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, ClientError> {
    let Some((cert_bytes, cert_what)) =
        read_source("cert", tls.cert_pem.as_deref(), tls.cert_file.as_deref())?
    else {
        return Ok(None);
    };
    let certs = parse_certs(&cert_bytes, &cert_what)?;
    let key_pem = tls.key_pem.as_ref().map(|s| s.expose());
    let Some((key_bytes, key_what)) = read_source("key", key_pem, tls.key_file.as_deref())? else {
        return Err(config_err(
            "cert is configured without key_pem or key_file".to_owned(),
        ));
    };
    // Never include the key's content in an error.
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => {
            config_err(format!("{key_what} contains no PEM private key"))
        }
        _ => config_err(format!("{key_what} is not a valid PEM private key")),
    })?;
    Ok(Some((certs, key)))
}

/// Builds the rustls client config (without ALPN; the connector sets it).
pub(super) fn build_client_config(tls: &TlsSettings) -> Result<ClientConfig, ClientError> {
    let versions: &[&'static rustls::SupportedProtocolVersion] = match tls.min_version {
        Some(TlsVersion::Tls13) => &[&rustls::version::TLS13],
        _ => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| config_err(format!("min_version: {e}")))?;
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert {
                provider: provider(),
            }))
    } else {
        builder.with_root_certificates(root_store(tls)?)
    };
    match client_identity(tls)? {
        Some((certs, key)) => builder.with_client_auth_cert(certs, key).map_err(|e| {
            config_err(format!(
                "client certificate and key do not fit together: {e}"
            ))
        }),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// `insecure_skip_verify`: accepts any server certificate, but still checks
/// that the handshake is signed by the key of the certificate presented.
#[derive(Debug)]
struct AcceptAnyServerCert {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Modification time and length of one watched file (None: unreadable).
pub(super) type Stamp = Option<(Option<SystemTime>, u64)>;

pub(super) fn stamp(path: &str) -> Stamp {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.modified().ok(), m.len()))
}

/// Stamps of all the TLS files of `tls`, in the order of `TlsSettings::files`.
pub(super) fn stamps(tls: &TlsSettings) -> Vec<Stamp> {
    tls.files().iter().map(|(_, p)| stamp(p)).collect()
}
