//! The TLS flags mqadmin and mqbench share (Apache's `tls.enable` / `tls.client.*` /
//! `tls.test.mode.enable`, which its tools read as system properties).

use std::path::Path;

use crate::config::{ConfigError, Configurable, RawConfig};
use crate::remoting::tls::{TlsClient, TlsConfig};

/// TLS options of a command-line client.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// Talk TLS to every server (Apache's `tls.enable` / `useTLS`).
    #[arg(long = "tls", global = true)]
    pub tls: bool,
    /// CA certificates (PEM) the servers' certificates are verified against (`tls.client.trustCertPath`).
    #[arg(long = "tlsTrustCertPath", global = true, value_name = "PEM")]
    pub trust_cert_path: Option<String>,
    /// Accept any server certificate (`tls.test.mode.enable=true`; for tests only).
    #[arg(long = "tlsTestMode", global = true)]
    pub test_mode: bool,
    /// Client certificate chain (PEM), for servers that ask for one (`tls.client.certPath`).
    #[arg(long = "tlsCertPath", global = true, value_name = "PEM")]
    pub cert_path: Option<String>,
    /// Client private key (PEM, unencrypted) (`tls.client.keyPath`).
    #[arg(long = "tlsKeyPath", global = true, value_name = "PEM")]
    pub key_path: Option<String>,
    /// A properties file with `tls.*` keys (Apache's `tls.config.file`); the flags above win.
    #[arg(long = "tlsConfigFile", global = true, value_name = "FILE")]
    pub config_file: Option<String>,
}

impl TlsArgs {
    /// The TLS client these flags ask for: None without `--tls` (or `tls.enable=true` in the file).
    pub fn client(&self) -> Result<Option<TlsClient>, String> {
        let mut c = TlsConfig::default();
        if let Some(f) = &self.config_file {
            let path = Path::new(f);
            let raw = RawConfig::load(path).map_err(|e| e.to_string())?;
            for e in raw.entries.iter().filter(|e| e.key.starts_with("tls.")) {
                c.set(&e.key, &e.value).map_err(|reason| {
                    ConfigError::BadValue {
                        path: path.to_path_buf(),
                        key: e.key.clone(),
                        value: e.value.clone(),
                        line: e.line,
                        reason,
                    }
                    .to_string()
                })?;
            }
            c.resolve(Some(path)).map_err(|e| e.to_string())?;
        }
        c.enable |= self.tls;
        c.test_mode |= self.test_mode;
        for (dst, src) in [
            (&mut c.client_trust_cert_path, &self.trust_cert_path),
            (&mut c.client_cert_path, &self.cert_path),
            (&mut c.client_key_path, &self.key_path),
        ] {
            if src.is_some() {
                dst.clone_from(src);
            }
        }
        c.client().map_err(|e| e.to_string())
    }
}
