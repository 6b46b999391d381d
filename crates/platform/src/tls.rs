//! TLS from settings: the gRPC server's (`grpc.tls`), the clients a service
//! opens to another service (`https://` addresses) and to NATS (`nats.tls`).
//! Certificates and keys are PEM files; a file that cannot be read or parsed
//! stops the start-up with the setting named. PostgreSQL's TLS is set in its
//! URL (`sslmode=verify-full&sslrootcert=…`), which the driver reads itself.

use std::path::Path;

use anyhow::Context;
use tonic::transport::{Certificate, Endpoint, Identity};

use crate::config::{ClientTlsConfig, ServerTlsConfig};

fn read(key: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    let pem = std::fs::read(path).with_context(|| format!("{key} {}", path.display()))?;
    // rustls would only say "no certificates found" later, without the file.
    anyhow::ensure!(
        pem.windows(11).any(|w| w == b"-----BEGIN "),
        "{key} {} is not a PEM file",
        path.display()
    );
    Ok(pem)
}

/// The server's TLS as `cfg` (at `key`, e.g. `grpc.tls`) asks; `None`: plain.
pub fn server_config(
    key: &str,
    cfg: &ServerTlsConfig,
) -> anyhow::Result<Option<tonic::transport::ServerTlsConfig>> {
    let (Some(cert), Some(private)) = (&cfg.cert_file, &cfg.key_file) else {
        return Ok(None);
    };
    let identity = Identity::from_pem(
        read(&format!("{key}.cert_file"), cert)?,
        read(&format!("{key}.key_file"), private)?,
    );
    let mut tls = tonic::transport::ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &cfg.client_ca_file {
        tls = tls
            .client_ca_root(Certificate::from_pem(read(
                &format!("{key}.client_ca_file"),
                ca,
            )?))
            .client_auth_optional(cfg.client_auth_optional);
    }
    Ok(Some(tls))
}

/// An endpoint for another service at `url`: TLS for an `https://` address
/// (trusting `tls.ca_file`, or the public web's roots without one, and showing
/// `tls.cert_file` when the server asks). `key` names the settings in errors.
pub fn endpoint(key: &str, url: &str, tls: &ClientTlsConfig) -> anyhow::Result<Endpoint> {
    let endpoint =
        Endpoint::from_shared(url.to_string()).with_context(|| format!("{key} url {url:?}"))?;
    if !url.starts_with("https://") {
        anyhow::ensure!(
            !tls.configured(),
            "{key}.tls is set but the address {url:?} is not https://"
        );
        return Ok(endpoint);
    }
    let mut config = tonic::transport::ClientTlsConfig::new();
    config = match &tls.ca_file {
        Some(ca) => config.ca_certificate(Certificate::from_pem(read(
            &format!("{key}.tls.ca_file"),
            ca,
        )?)),
        None => config.with_webpki_roots(),
    };
    if let (Some(cert), Some(private)) = (&tls.cert_file, &tls.key_file) {
        config = config.identity(Identity::from_pem(
            read(&format!("{key}.tls.cert_file"), cert)?,
            read(&format!("{key}.tls.key_file"), private)?,
        ));
    }
    endpoint
        .tls_config(config)
        .with_context(|| format!("{key}.tls"))
}

/// `options` with NATS TLS as `tls` says; `required` (a `tls://` address, or
/// anything in `tls` set) refuses a server that offers no TLS.
pub fn nats_options(
    mut options: async_nats::ConnectOptions,
    tls: &ClientTlsConfig,
    required: bool,
) -> anyhow::Result<async_nats::ConnectOptions> {
    if let Some(ca) = &tls.ca_file {
        read("nats.tls.ca_file", ca)?;
        options = options.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(private)) = (&tls.cert_file, &tls.key_file) {
        read("nats.tls.cert_file", cert)?;
        read("nats.tls.key_file", private)?;
        options = options.add_client_certificate(cert.clone(), private.clone());
    }
    Ok(options.require_tls(required || tls.configured()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_non_pem_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("cert.txt");
        std::fs::write(&not_pem, "hello").unwrap();
        let cfg = ServerTlsConfig {
            cert_file: Some(not_pem.clone()),
            key_file: Some(dir.path().join("missing.pem")),
            ..Default::default()
        };
        let err = format!("{:#}", server_config("grpc.tls", &cfg).unwrap_err());
        assert!(
            err.contains("grpc.tls.cert_file") && err.contains("not a PEM file"),
            "{err}"
        );
        let tls = ClientTlsConfig {
            ca_file: Some(not_pem),
            ..Default::default()
        };
        let err = format!(
            "{:#}",
            endpoint("listings", "http://127.0.0.1:1", &tls).unwrap_err()
        );
        assert!(err.contains("not https://"), "{err}");
        let err = format!(
            "{:#}",
            endpoint("listings", "https://127.0.0.1:1", &tls).unwrap_err()
        );
        assert!(err.contains("listings.tls.ca_file"), "{err}");
        assert!(
            server_config("grpc.tls", &ServerTlsConfig::default())
                .unwrap()
                .is_none()
        );
    }
}
