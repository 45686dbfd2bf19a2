//! TLS on the remoting transport (spec: security-and-metrics.md §4), with rustls.
//!
//! Server side: [`TlsServer`] holds the current acceptor (swapped when the certificate files change)
//! and the mode. In `permissive` mode the first byte of a connection decides: `0x16` (a TLS record of
//! type handshake) starts a TLS handshake, anything else is served as plain frames; `enforcing`
//! refuses plain connections; `disabled` never looks. Client side: [`TlsClient`] wraps a connector
//! that verifies the server against a trust store (or accepts any certificate in test mode).
//!
//! The keys are Apache's (`tls.server.mode`, `tls.server.certPath`, ...); Apache reads them from JVM
//! system properties and `tls.config.file`, here they are read from the container's (or the
//! NameServer's) config file, and from the file `tls.config.file` names.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info};

use crate::config::{resolve_relative, ConfigError, Configurable, RawConfig};
use crate::{config_enum, config_struct};

/// The first byte of a TLS connection: a record of content type `handshake` (22).
pub const TLS_HANDSHAKE_BYTE: u8 = 0x16;

config_enum! {
    /// How a server port treats TLS (Apache's `TlsMode`, key `tls.server.mode`).
    pub enum TlsMode {
        /// Plain frames only.
        Disabled = "disabled",
        /// TLS when the first byte is 0x16, else plain frames.
        Permissive = "permissive",
        /// TLS only; plain connections are closed.
        Enforcing = "enforcing",
    }
}

config_enum! {
    /// Whether a TLS server asks clients for a certificate (`tls.server.need.client.auth`).
    pub enum ClientAuth {
        /// No client certificate is asked for.
        None = "none",
        /// A client certificate is asked for and verified if sent.
        Optional = "optional",
        /// A client without a valid certificate is refused.
        Require = "require",
    }
}

config_struct! {
    /// TLS settings of one process (server and client side), Apache's keys.
    pub struct TlsConfig {
        /// `disabled`, `permissive` or `enforcing`.
        mode: TlsMode = "tls.server.mode" => TlsMode::Permissive,
        /// The server's certificate chain (PEM).
        server_cert_path: Option<String> = "tls.server.certPath" => None,
        /// The server's private key (PEM: PKCS#8, PKCS#1 or SEC1; not encrypted).
        server_key_path: Option<String> = "tls.server.keyPath" => None,
        /// The key's password: encrypted keys are not supported, so this must stay empty.
        server_key_password: Option<String> = "tls.server.keyPassword" => None,
        /// `none`, `optional` or `require`: whether clients must present a certificate.
        server_need_client_auth: ClientAuth = "tls.server.need.client.auth" => ClientAuth::None,
        /// Accepted for compatibility: client certificates are always verified against
        /// `tls.server.trustCertPath` when they are asked for.
        server_auth_client: bool = "tls.server.authClient" => false,
        /// CA certificates (PEM) client certificates are verified against.
        server_trust_cert_path: Option<String> = "tls.server.trustCertPath" => None,
        /// Outbound connections (to NameServers, to an HA master; mqadmin, mqbench) use TLS.
        enable: bool = "tls.enable" => false,
        /// Test mode: a TLS client accepts any server certificate. Apache's default is true;
        /// here it must be asked for.
        test_mode: bool = "tls.test.mode.enable" => false,
        /// The client's certificate chain (PEM), for servers that ask for one.
        client_cert_path: Option<String> = "tls.client.certPath" => None,
        /// The client's private key (PEM, not encrypted).
        client_key_path: Option<String> = "tls.client.keyPath" => None,
        /// The client key's password: must stay empty.
        client_key_password: Option<String> = "tls.client.keyPassword" => None,
        /// Accepted for compatibility: a TLS client verifies the server whenever
        /// `tls.client.trustCertPath` is set (and refuses to start without it unless in test mode).
        client_auth_server: bool = "tls.client.authServer" => false,
        /// CA certificates (PEM) the server's certificate is verified against.
        client_trust_cert_path: Option<String> = "tls.client.trustCertPath" => None,
        /// A properties file whose `tls.*` entries override these (except `tls.server.mode` and
        /// `tls.enable`), as Apache's `tls.config.file`.
        config_file: Option<String> = "tls.config.file" => None,
        /// How long a TLS handshake may take, waiting for a handshake slot included (our key).
        handshake_timeout_millis: u64 = "tls.server.handshakeTimeoutMillis" => 10_000,
        /// Most TLS handshakes in progress at once per port (our key).
        handshake_concurrency: usize = "tls.server.handshakeConcurrency" => 64,
        /// How often the certificate, key and trust files are checked for changes; 0 = never (our
        /// key; Apache's file watch polls every 500 ms).
        reload_interval_millis: u64 = "tls.server.reloadIntervalMillis" => 500,
    }
}

/// Errors of the TLS set-up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key or trust file cannot be read or parsed.
    #[error("{what} {path}: {source}")]
    File {
        /// Which file it is (e.g. `tls.server.certPath`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: rustls::pki_types::pem::Error,
    },
    /// A file holds no certificate.
    #[error("{what} {path} holds no certificate")]
    Empty {
        /// Which file it is.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the certificate, key or trust store.
    #[error("{what}: {source}")]
    Rustls {
        /// What was being built.
        what: &'static str,
        /// Why.
        source: rustls::Error,
    },
    /// The client verifier cannot be built from the trust store.
    #[error("tls.server.trustCertPath: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The settings do not fit together.
    #[error("{0}")]
    Invalid(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file_err = |source| TlsError::File { what, path: path.to_path_buf(), source };
    let certs =
        CertificateDer::pem_file_iter(path).map_err(file_err)?.collect::<Result<Vec<_>, _>>().map_err(file_err)?;
    if certs.is_empty() {
        return Err(TlsError::Empty { what, path: path.to_path_buf() });
    }
    Ok(certs)
}

fn read_key(what: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsError::File { what, path: path.to_path_buf(), source })
}

fn read_roots(what: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in read_certs(what, path)? {
        roots.add(c).map_err(|source| TlsError::Rustls { what, source })?;
    }
    Ok(roots)
}

impl TlsConfig {
    /// Applies `tls.config.file` (if set) over these values and resolves every relative path against
    /// `base` (the config file these keys came from). Call once, at load.
    pub fn resolve(&mut self, base: Option<&Path>) -> Result<(), ConfigError> {
        let base_file = base.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("./tls.conf"));
        if let Some(f) = self.config_file.clone().filter(|f| !f.trim().is_empty()) {
            let path = resolve_relative(&base_file, &f);
            let raw = RawConfig::load(&path)?;
            let (mode, enable) = (self.mode, self.enable);
            let mut over = self.clone();
            for e in raw.entries.iter().filter(|e| e.key.starts_with("tls.") && e.key != "tls.config.file") {
                over.set(&e.key, &e.value).map_err(|reason| ConfigError::BadValue {
                    path: path.clone(),
                    key: e.key.clone(),
                    value: e.value.clone(),
                    line: e.line,
                    reason,
                })?;
            }
            over.mode = mode;
            over.enable = enable;
            // Paths in that file are relative to it.
            for (p, set) in [
                (&mut over.server_cert_path, raw.get("tls.server.certPath").is_some()),
                (&mut over.server_key_path, raw.get("tls.server.keyPath").is_some()),
                (&mut over.server_trust_cert_path, raw.get("tls.server.trustCertPath").is_some()),
                (&mut over.client_cert_path, raw.get("tls.client.certPath").is_some()),
                (&mut over.client_key_path, raw.get("tls.client.keyPath").is_some()),
                (&mut over.client_trust_cert_path, raw.get("tls.client.trustCertPath").is_some()),
            ] {
                if set {
                    *p = p.as_deref().map(|v| resolve_relative(&path, v).to_string_lossy().into_owned());
                }
            }
            *self = over;
        }
        for p in [
            &mut self.server_cert_path,
            &mut self.server_key_path,
            &mut self.server_trust_cert_path,
            &mut self.client_cert_path,
            &mut self.client_key_path,
            &mut self.client_trust_cert_path,
        ] {
            *p = p
                .as_deref()
                .filter(|v| !v.trim().is_empty())
                .map(|v| resolve_relative(&base_file, v).to_string_lossy().into_owned());
        }
        Ok(())
    }

    /// Checks the values together (files are read by [`TlsConfig::server`] and [`TlsConfig::client`]).
    pub fn validate(&self) -> Result<(), String> {
        if self.server_key_password.as_deref().is_some_and(|p| !p.is_empty())
            || self.client_key_password.as_deref().is_some_and(|p| !p.is_empty())
        {
            return Err("tls.server.keyPassword / tls.client.keyPassword: encrypted keys are not supported; \
                        give an unencrypted PEM key"
                .into());
        }
        if self.server_cert_path.is_some() != self.server_key_path.is_some() {
            return Err("tls.server.certPath and tls.server.keyPath must be set together".into());
        }
        if self.client_cert_path.is_some() != self.client_key_path.is_some() {
            return Err("tls.client.certPath and tls.client.keyPath must be set together".into());
        }
        if self.mode == TlsMode::Enforcing && self.server_cert_path.is_none() {
            return Err("tls.server.mode=enforcing needs tls.server.certPath and tls.server.keyPath".into());
        }
        if self.server_need_client_auth != ClientAuth::None && self.server_trust_cert_path.is_none() {
            return Err(format!(
                "tls.server.need.client.auth={} needs tls.server.trustCertPath (the CA client certificates are \
                 verified against)",
                self.server_need_client_auth
            ));
        }
        if self.enable && !self.test_mode && self.client_trust_cert_path.is_none() {
            return Err("tls.enable=true needs tls.client.trustCertPath (or tls.test.mode.enable=true to accept \
                        any server certificate)"
                .into());
        }
        if self.handshake_timeout_millis == 0 || self.handshake_concurrency == 0 {
            return Err(
                "tls.server.handshakeTimeoutMillis and tls.server.handshakeConcurrency must be at least 1".into()
            );
        }
        Ok(())
    }

    /// Whether the server side serves TLS at all (a mode other than `disabled`, and a certificate).
    pub fn serves_tls(&self) -> bool {
        self.mode != TlsMode::Disabled && self.server_cert_path.is_some()
    }

    /// The server side: `None` when this process serves no TLS. Reads the files.
    pub fn server(&self) -> Result<Option<Arc<TlsServer>>, TlsError> {
        self.validate().map_err(TlsError::Invalid)?;
        if !self.serves_tls() {
            return Ok(None);
        }
        let acceptor = build_acceptor(self)?;
        let files = self.watched_files();
        let stamps = stamps(&files);
        Ok(Some(Arc::new(TlsServer {
            mode: self.mode,
            acceptor: ArcSwap::from_pointee(acceptor),
            config: self.clone(),
            stamps: parking_lot::Mutex::new(stamps),
            files,
            reloaded: AtomicU64::new(0),
            reload_failed: AtomicU64::new(0),
        })))
    }

    /// The client side: `None` unless `tls.enable`. Reads the files.
    pub fn client(&self) -> Result<Option<TlsClient>, TlsError> {
        self.validate().map_err(TlsError::Invalid)?;
        if !self.enable {
            return Ok(None);
        }
        TlsClient::build(self).map(Some)
    }

    fn watched_files(&self) -> Vec<PathBuf> {
        [&self.server_cert_path, &self.server_key_path, &self.server_trust_cert_path]
            .into_iter()
            .flatten()
            .map(PathBuf::from)
            .collect()
    }
}

fn build_acceptor(c: &TlsConfig) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    let (Some(cert), Some(key)) = (&c.server_cert_path, &c.server_key_path) else {
        return Err(TlsError::Invalid("tls.server.certPath and tls.server.keyPath are not set".into()));
    };
    let certs = read_certs("tls.server.certPath", Path::new(cert))?;
    let key = read_key("tls.server.keyPath", Path::new(key))?;
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls { what: "TLS protocol versions", source })?;
    let builder = match (c.server_need_client_auth, &c.server_trust_cert_path) {
        (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
        (auth, Some(trust)) => {
            let roots = Arc::new(read_roots("tls.server.trustCertPath", Path::new(trust))?);
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider);
            let v = if auth == ClientAuth::Optional { v.allow_unauthenticated() } else { v };
            builder.with_client_cert_verifier(v.build()?)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|source| TlsError::Rustls { what: "tls.server.certPath / tls.server.keyPath", source })?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Modification time and length of each file (None when it cannot be read).
type Stamps = Vec<Option<(SystemTime, u64)>>;

fn stamps(files: &[PathBuf]) -> Stamps {
    files.iter().map(|f| std::fs::metadata(f).ok().and_then(|m| Some((m.modified().ok()?, m.len())))).collect()
}

/// What the first byte of a connection asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstByte {
    /// A TLS handshake.
    Tls,
    /// Plain frames.
    Plain,
    /// The peer closed before sending anything.
    Closed,
}

/// Waits for a connection's first byte without consuming it.
pub async fn peek_first_byte(stream: &TcpStream) -> std::io::Result<FirstByte> {
    let mut b = [0u8; 1];
    Ok(match stream.peek(&mut b).await? {
        0 => FirstByte::Closed,
        _ if b[0] == TLS_HANDSHAKE_BYTE => FirstByte::Tls,
        _ => FirstByte::Plain,
    })
}

/// A server connection after TLS negotiation.
pub enum Negotiated {
    /// Plain frames.
    Plain(TcpStream),
    /// TLS (boxed: the TLS state is large).
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// Why negotiation ended without a connection to serve.
#[derive(Debug)]
pub enum Refusal {
    /// The peer closed, or sent nothing within the wait: nothing worth a warning.
    Quiet(String),
    /// Refused (mode, handshake failure or timeout): worth a (rate-limited) warning.
    Refused(String),
}

/// Sleeps for `d`, or forever when `d` is zero.
async fn sleep_unless_zero(d: Duration) {
    if d.is_zero() {
        std::future::pending::<()>().await
    } else {
        tokio::time::sleep(d).await
    }
}

/// The server side of TLS for every port of one process: the mode and the current acceptor, which
/// [`TlsServer::spawn_reloader`] replaces when the certificate, key or trust files change.
pub struct TlsServer {
    mode: TlsMode,
    acceptor: ArcSwap<tokio_rustls::TlsAcceptor>,
    config: TlsConfig,
    files: Vec<PathBuf>,
    stamps: parking_lot::Mutex<Stamps>,
    reloaded: AtomicU64,
    reload_failed: AtomicU64,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer").field("mode", &self.mode).field("files", &self.files).finish()
    }
}

impl TlsServer {
    /// The mode (never `disabled`: a disabled server has no `TlsServer`).
    pub fn mode(&self) -> TlsMode {
        self.mode
    }

    /// The acceptor to use for a new connection (the newest certificate).
    pub fn acceptor(&self) -> Arc<tokio_rustls::TlsAcceptor> {
        self.acceptor.load_full()
    }

    /// How long a handshake may take (waiting for a slot included).
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.config.handshake_timeout_millis)
    }

    /// Most handshakes in progress at once per port.
    pub fn handshake_concurrency(&self) -> usize {
        self.config.handshake_concurrency
    }

    /// Decides what an accepted connection speaks, by its first byte (waiting up to
    /// `first_byte_wait` for it; zero = no limit): `0x16` runs a TLS handshake (within
    /// `tls.server.handshakeTimeoutMillis`, waiting for one of `handshakes` included), anything
    /// else is plain unless the mode is `enforcing`.
    pub async fn negotiate(
        &self,
        stream: TcpStream,
        first_byte_wait: Duration,
        handshakes: &Arc<tokio::sync::Semaphore>,
    ) -> Result<Negotiated, Refusal> {
        let first = tokio::select! {
            _ = sleep_unless_zero(first_byte_wait) => {
                return Err(Refusal::Quiet(format!("nothing sent within {} ms", first_byte_wait.as_millis())));
            }
            r = peek_first_byte(&stream) => r,
        };
        match first {
            Err(e) => Err(Refusal::Quiet(format!("read failed: {e}"))),
            Ok(FirstByte::Closed) => Err(Refusal::Quiet("closed before sending anything".into())),
            Ok(FirstByte::Plain) if self.mode == TlsMode::Enforcing => {
                Err(Refusal::Refused("plain (non-TLS) connection refused: tls.server.mode=enforcing".into()))
            }
            Ok(FirstByte::Plain) => Ok(Negotiated::Plain(stream)),
            Ok(FirstByte::Tls) => {
                let timeout = self.handshake_timeout();
                let acceptor = self.acceptor();
                let handshake = async {
                    let _slot = handshakes.clone().acquire_owned().await;
                    acceptor.accept(stream).await
                };
                match tokio::time::timeout(timeout, handshake).await {
                    Ok(Ok(s)) => Ok(Negotiated::Tls(Box::new(s))),
                    Ok(Err(e)) => Err(Refusal::Refused(format!("TLS handshake failed: {e}"))),
                    Err(_) => {
                        Err(Refusal::Refused(format!("TLS handshake not done within {} ms", timeout.as_millis())))
                    }
                }
            }
        }
    }

    /// How many times changed files were loaded, and how many times they could not be (the previous
    /// certificate was kept).
    pub fn reloads(&self) -> (u64, u64) {
        (self.reloaded.load(Ordering::Relaxed), self.reload_failed.load(Ordering::Relaxed))
    }

    /// Checks the files once; if any changed, builds a new acceptor from them. A file that cannot
    /// be read or a certificate rustls refuses keeps the current acceptor (and is logged). Blocking:
    /// call it off the async threads. Returns true when a new acceptor was installed.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamps(&self.files);
        {
            let mut seen = self.stamps.lock();
            if *seen == now {
                return false;
            }
            *seen = now;
        }
        match build_acceptor(&self.config) {
            Ok(a) => {
                self.acceptor.store(Arc::new(a));
                self.reloaded.fetch_add(1, Ordering::Relaxed);
                info!(files = ?self.files, "TLS certificate reloaded; new connections use it");
                true
            }
            Err(e) => {
                self.reload_failed.fetch_add(1, Ordering::Relaxed);
                error!(error = %e, "TLS certificate files changed but cannot be used; keeping the previous certificate");
                false
            }
        }
    }

    /// Starts the task that polls the files every `tls.server.reloadIntervalMillis` (if not 0) on
    /// `tasks`, until `cancel` fires or the server is dropped.
    pub fn spawn_reloader(self: &Arc<Self>, tasks: &TaskTracker, cancel: CancellationToken) {
        let every = Duration::from_millis(self.config.reload_interval_millis);
        if every.is_zero() || self.files.is_empty() {
            return;
        }
        let weak: Weak<TlsServer> = Arc::downgrade(self);
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let Some(me) = weak.upgrade() else { break };
                // Stat and read the files on the blocking pool.
                if tokio::task::spawn_blocking(move || me.reload_if_changed()).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// The client side of TLS: a connector and the rule for naming the server.
#[derive(Clone)]
pub struct TlsClient {
    connector: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsClient")
    }
}

impl TlsClient {
    fn build(c: &TlsConfig) -> Result<TlsClient, TlsError> {
        let provider = provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Rustls { what: "TLS protocol versions", source })?;
        let builder = match &c.client_trust_cert_path {
            Some(trust) => builder.with_root_certificates(read_roots("tls.client.trustCertPath", Path::new(trust))?),
            None if c.test_mode => {
                builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider)))
            }
            None => {
                return Err(TlsError::Invalid(
                    "a TLS client needs tls.client.trustCertPath (or tls.test.mode.enable=true)".into(),
                ))
            }
        };
        let config = match (&c.client_cert_path, &c.client_key_path) {
            (Some(cert), Some(key)) => {
                let certs = read_certs("tls.client.certPath", Path::new(cert))?;
                let key = read_key("tls.client.keyPath", Path::new(key))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|source| TlsError::Rustls { what: "tls.client.certPath / tls.client.keyPath", source })?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(TlsClient { connector: tokio_rustls::TlsConnector::from(Arc::new(config)) })
    }

    /// A client that trusts the CA certificates in `trust` (PEM), or any certificate when `trust` is
    /// None (test mode).
    pub fn new(trust: Option<&Path>) -> Result<TlsClient, TlsError> {
        let c = TlsConfig {
            enable: true,
            test_mode: trust.is_none(),
            client_trust_cert_path: trust.map(|p| p.to_string_lossy().into_owned()),
            ..Default::default()
        };
        Self::build(&c)
    }

    /// Runs the TLS handshake over `tcp`, naming the server by the host part of `addr`
    /// (`host:port`; an IP address must be in the certificate's IP SANs when verifying).
    pub async fn connect(
        &self,
        addr: &str,
        tcp: TcpStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let host = match addr.rsplit_once(':') {
            Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
            None => addr,
        };
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("server name {host}: {e}")))?;
        self.connector.connect(name, tcp).await
    }
}

/// Test mode: any server certificate is accepted (signatures are still checked).
#[derive(Debug)]
struct AcceptAnyServerCert(Arc<CryptoProvider>);

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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
