//! Serving the router: HTTPS with rustls, or plain HTTP where nothing can listen in.
//!
//! The rule is one function, [`transport`]: with `--tls-cert`/`--tls-key` the hub speaks TLS;
//! without them it speaks plain HTTP only on a loopback address (nothing leaves the machine:
//! a reverse proxy on the same host, a test, a demo), and on a network address only when the
//! operator says `--insecure-http`, in which case the dashboard shows a warning on every page.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum_server::tls_rustls::RustlsConfig;
use fieldkit_sync::proto::Transport;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::api::{AppState, router};

/// Why the hub will not serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Plain HTTP on a network address without `--insecure-http`.
    #[error(
        "refusing plain HTTP on {addr}: anyone on that network could read passwords, session cookies and audit entries; required --tls-cert and --tls-key, a loopback address (127.0.0.1, ::1) behind a TLS proxy, or --insecure-http to accept the risk"
    )]
    PlainHttpOnNetwork {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Only one of the certificate and the key was given.
    #[error("TLS needs both --tls-cert and --tls-key; only {given} was given")]
    HalfTls {
        /// The one given.
        given: &'static str,
    },
    /// A certificate or key file is unusable.
    #[error("{path}: {reason}")]
    Tls {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Listening failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// The server stopped with an error.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// How to serve.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// PEM certificate chain.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    pub tls_key: Option<PathBuf>,
    /// Allow plain HTTP on a network address.
    pub insecure_http: bool,
}

/// Decides the transport for `addr`: the one rule of the module documentation.
pub fn transport(addr: SocketAddr, opts: &ServeOptions) -> Result<Transport, ServeError> {
    match (&opts.tls_cert, &opts.tls_key) {
        (Some(_), Some(_)) => Ok(Transport::Tls),
        (Some(_), None) => Err(ServeError::HalfTls {
            given: "--tls-cert",
        }),
        (None, Some(_)) => Err(ServeError::HalfTls { given: "--tls-key" }),
        (None, None) if addr.ip().is_loopback() => Ok(Transport::LoopbackHttp),
        (None, None) if opts.insecure_http => Ok(Transport::InsecureHttp),
        (None, None) => Err(ServeError::PlainHttpOnNetwork { addr }),
    }
}

/// Reads a PEM certificate chain and private key into a rustls server configuration.
pub fn tls_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, ServeError> {
    let bad = |path: &Path, reason: String| ServeError::Tls {
        path: path.into(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, format!("not a PEM certificate file: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(cert, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(bad(
            cert,
            "holds no certificate: required \"-----BEGIN CERTIFICATE-----\"".into(),
        ));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        bad(
            key,
            format!("not a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| {
            bad(
                key,
                format!("does not match the certificate or is unusable: {e}"),
            )
        })
}

/// A bound, not yet serving, hub.
pub struct Listener {
    listener: std::net::TcpListener,
    tls: Option<RustlsConfig>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// How.
    pub transport: Transport,
}

impl Listener {
    /// Binds `listen` and checks the transport rule; nothing is served yet.
    pub fn bind(listen: &str, opts: &ServeOptions) -> Result<Self, ServeError> {
        let listener =
            std::net::TcpListener::bind(listen).map_err(|source| ServeError::Listen {
                addr: listen.into(),
                source,
            })?;
        let addr = listener.local_addr()?;
        let transport = transport(addr, opts)?;
        let tls = match (&opts.tls_cert, &opts.tls_key) {
            (Some(c), Some(k)) => Some(RustlsConfig::from_config(Arc::new(tls_config(c, k)?))),
            _ => None,
        };
        listener.set_nonblocking(true)?;
        Ok(Self {
            listener,
            tls,
            addr,
            transport,
        })
    }

    /// The URL clients use.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Serves `state` (its transport set to this listener's) until `shutdown` resolves.
    pub async fn serve(
        self,
        mut state: AppState,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        state.transport = self.transport;
        let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
        let handle = axum_server::Handle::new();
        let h = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            h.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
        });
        match self.tls {
            Some(tls) => {
                axum_server::from_tcp_rustls(self.listener, tls)?
                    .handle(handle)
                    .serve(app)
                    .await?
            }
            None => {
                axum_server::from_tcp(self.listener)?
                    .handle(handle)
                    .serve(app)
                    .await?
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_on_loopback_unless_insecure_is_said() {
        let plain = ServeOptions::default();
        let insecure = ServeOptions {
            insecure_http: true,
            ..Default::default()
        };
        let tls = ServeOptions {
            tls_cert: Some("c.pem".into()),
            tls_key: Some("k.pem".into()),
            ..Default::default()
        };
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let lo6: SocketAddr = "[::1]:8080".parse().unwrap();
        let net: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(transport(lo, &plain).unwrap(), Transport::LoopbackHttp);
        assert_eq!(transport(lo6, &plain).unwrap(), Transport::LoopbackHttp);
        let e = transport(net, &plain).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("refusing plain HTTP on 0.0.0.0:8080"),
            "{e}"
        );
        assert_eq!(transport(net, &insecure).unwrap(), Transport::InsecureHttp);
        assert_eq!(transport(net, &tls).unwrap(), Transport::Tls);
        let half = ServeOptions {
            tls_key: Some("k.pem".into()),
            ..Default::default()
        };
        assert_eq!(
            transport(lo, &half).unwrap_err().to_string(),
            "TLS needs both --tls-cert and --tls-key; only --tls-key was given"
        );
    }
}
