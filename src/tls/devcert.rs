//! A throwaway CA and server certificate for `kvseal server --dev-tls` (as `vault server -dev-tls`).

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509NameBuilder, X509};

/// Where the generated files are.
pub struct DevCerts {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

fn key() -> Result<PKey<Private>, openssl::error::ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    PKey::from_ec_key(EcKey::generate(&group)?)
}

fn serial() -> Result<openssl::asn1::Asn1Integer, openssl::error::ErrorStack> {
    let mut bn = BigNum::new()?;
    bn.rand(127, MsbOption::MAYBE_ZERO, false)?;
    bn.to_asn1_integer()
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// Generates a CA and a server certificate for localhost/127.0.0.1/::1 in `dir`.
pub fn generate_dev_certs(dir: &Path) -> Result<DevCerts, String> {
    type Pems = (Vec<u8>, Vec<u8>, Vec<u8>);
    let inner = || -> Result<Pems, openssl::error::ErrorStack> {
        let ca_key = key()?;
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_text("CN", "kvseal dev CA")?;
        let ca_name = name.build();
        let mut ca = X509::builder()?;
        ca.set_version(2)?;
        let sn = serial()?;
        ca.set_serial_number(&sn)?;
        ca.set_subject_name(&ca_name)?;
        ca.set_issuer_name(&ca_name)?;
        ca.set_pubkey(&ca_key)?;
        let (nb, na) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(365)?);
        ca.set_not_before(&nb)?;
        ca.set_not_after(&na)?;
        ca.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        ca.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()?,
        )?;
        ca.sign(&ca_key, MessageDigest::sha256())?;
        let ca = ca.build();

        let srv_key = key()?;
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_text("CN", "localhost")?;
        let srv_name = name.build();
        let mut srv = X509::builder()?;
        srv.set_version(2)?;
        let sn = serial()?;
        srv.set_serial_number(&sn)?;
        srv.set_subject_name(&srv_name)?;
        srv.set_issuer_name(ca.subject_name())?;
        srv.set_pubkey(&srv_key)?;
        srv.set_not_before(&nb)?;
        srv.set_not_after(&na)?;
        srv.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
        srv.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
        let san = SubjectAlternativeName::new()
            .dns("localhost")
            .ip("127.0.0.1")
            .ip("::1")
            .build(&srv.x509v3_context(Some(&ca), None))?;
        srv.append_extension(san)?;
        srv.sign(&ca_key, MessageDigest::sha256())?;
        let srv = srv.build();

        Ok((
            ca.to_pem()?,
            srv.to_pem()?,
            srv_key.private_key_to_pem_pkcs8()?,
        ))
    };
    let (ca, cert, key) = inner().map_err(|e| format!("generating dev TLS certificates: {e}"))?;
    let files = DevCerts {
        ca_file: dir.join("vault-ca.pem"),
        cert_file: dir.join("vault-cert.pem"),
        key_file: dir.join("vault-key.pem"),
    };
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    std::fs::write(&files.ca_file, ca).map_err(|e| io(&files.ca_file, e))?;
    std::fs::write(&files.cert_file, cert).map_err(|e| io(&files.cert_file, e))?;
    write_private(&files.key_file, &key).map_err(|e| io(&files.key_file, e))?;
    Ok(files)
}
