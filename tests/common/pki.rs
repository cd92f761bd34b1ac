//! Test certificates made with the `openssl` CLI: a CA, a server certificate for 127.0.0.1 and
//! client certificates, plus reqwest clients that trust the CA and present a client certificate.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA: `name.pem` and `name-key.pem` in `dir`.
pub fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}-key.pem"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=kvseal test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A leaf `name.pem` / `name-key.pem` signed by `ca`, with the extensions `ext`.
pub fn make_leaf(dir: &Path, ca: &str, name: &str, subj: &str, ext: &str, serial: &str) {
    fs::write(dir.join(format!("{name}.ext")), ext).expect("ext");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}-key.pem"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            subj,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}-key.pem"),
            "-set_serial",
            serial,
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// `ca` plus a server certificate `server` for localhost / 127.0.0.1.
pub fn make_ca_and_server(dir: &Path) {
    make_ca(dir, "ca");
    make_leaf(
        dir,
        "ca",
        "server",
        "/CN=localhost",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
        "0x1001",
    );
}

/// A client certificate `name` with subject `/CN=<name>`, signed by `ca`.
pub fn make_client(dir: &Path, name: &str, serial: &str) {
    make_leaf(
        dir,
        "ca",
        name,
        &format!("/CN={name}"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
        serial,
    );
}

/// The `[listener]` lines for TLS with `server.pem` and client certificates verified against
/// `ca.pem`, all in `dir`.
pub fn listener_lines(dir: &Path) -> String {
    format!(
        "tls_cert_file = \"{d}/server.pem\"\ntls_key_file = \"{d}/server-key.pem\"\n\
         tls_client_ca_file = \"{d}/ca.pem\"",
        d = dir.display()
    )
}

/// A client trusting `ca.pem`, presenting the client certificate `identity` when given.
pub fn tls_client(dir: &Path, identity: Option<&str>) -> reqwest::blocking::Client {
    let ca =
        reqwest::Certificate::from_pem(&fs::read(dir.join("ca.pem")).expect("ca")).expect("ca pem");
    let mut b = reqwest::blocking::Client::builder()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(30));
    if let Some(n) = identity {
        let mut pem = fs::read(dir.join(format!("{n}.pem"))).expect("cert");
        pem.extend(fs::read(dir.join(format!("{n}-key.pem"))).expect("key"));
        b = b.identity(reqwest::Identity::from_pem(&pem).expect("identity"));
    }
    b.build().expect("tls client")
}
