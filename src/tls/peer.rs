//! What a verified client certificate says: its subject, its SANs, and the UPN otherName values that
//! OKMS access certificates carry (`okms.domain:<uuid>`, OID 1.3.6.1.4.1.311.20.2.3).

use openssl::x509::X509Ref;

/// The identity-relevant parts of a verified client certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerCertificate {
    /// Subject attributes as (short name, value), e.g. ("CN", "app1").
    pub subject: Vec<(String, String)>,
    pub san_dns: Vec<String>,
    pub san_uri: Vec<String>,
    /// UPN otherName values.
    pub upn: Vec<String>,
}

impl PeerCertificate {
    pub fn from_x509(cert: &X509Ref) -> Self {
        let subject = cert
            .subject_name()
            .entries()
            .filter_map(|e| {
                let key = e.object().nid().short_name().ok()?.to_string();
                let value = String::from_utf8(e.data().as_slice().to_vec()).ok()?;
                Some((key, value))
            })
            .collect();
        let (mut san_dns, mut san_uri) = (Vec::new(), Vec::new());
        if let Some(names) = cert.subject_alt_names() {
            for n in names.iter() {
                if let Some(d) = n.dnsname() {
                    san_dns.push(d.to_string());
                }
                if let Some(u) = n.uri() {
                    san_uri.push(u.to_string());
                }
            }
        }
        let upn = cert
            .to_der()
            .map(|der| upn_values(&der))
            .unwrap_or_default();
        Self {
            subject,
            san_dns,
            san_uri,
            upn,
        }
    }

    /// Whether the subject holds every `KEY=value` of `want` (`"CN=app1"`, `"CN=app1,O=acme"`).
    pub fn subject_matches(&self, want: &str) -> bool {
        let pairs: Vec<(&str, &str)> = want
            .split(',')
            .filter_map(|p| p.trim().split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        !pairs.is_empty()
            && pairs.iter().all(|(k, v)| {
                self.subject
                    .iter()
                    .any(|(sk, sv)| sk.eq_ignore_ascii_case(k) && sv == v)
            })
    }

    /// Whether the certificate may be used on OKMS domain `id`. A certificate without any
    /// `okms.domain:` UPN, or with `okms.domain:*`, is not restricted; otherwise `id` must be one of
    /// the domains it names. A value that is not a UUID restricts to nothing (fail closed).
    pub fn allows_okms_domain(&self, id: &uuid::Uuid) -> bool {
        let mut restricted = false;
        for v in &self.upn {
            let Some(d) = v.strip_prefix("okms.domain:") else {
                continue;
            };
            let d = d.trim();
            if d == "*" {
                return true;
            }
            restricted = true;
            if uuid::Uuid::parse_str(d).is_ok_and(|u| &u == id) {
                return true;
            }
        }
        !restricted
    }
}

/// The DER encoding of OID 1.3.6.1.4.1.311.20.2.3 (Microsoft UPN).
const UPN_OID: [u8; 12] = [
    0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x14, 0x02, 0x03,
];

/// Reads a DER length at `i`; returns (length, bytes used).
fn der_len(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let first = *b.get(i)?;
    if first < 0x80 {
        return Some((first as usize, 1));
    }
    let n = (first & 0x7f) as usize;
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for k in 0..n {
        len = (len << 8) | *b.get(i + 1 + k)? as usize;
    }
    Some((len, 1 + n))
}

/// Finds every UPN otherName value in a certificate's DER. An otherName is
/// `OID, [0] EXPLICIT UTF8String`; the openssl crate does not expose otherName values, so the DER is
/// scanned for the UPN OID and the value after it is decoded strictly (any mismatch is skipped).
fn upn_values(der: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + UPN_OID.len() < der.len() {
        if der[i..].starts_with(&UPN_OID) {
            let mut j = i + UPN_OID.len();
            if der.get(j) == Some(&0xa0) {
                if let Some((_, used)) = der_len(der, j + 1) {
                    j += 1 + used;
                    if der.get(j) == Some(&0x0c) {
                        if let Some((len, used)) = der_len(der, j + 1) {
                            let start = j + 1 + used;
                            if let Some(bytes) = der.get(start..start + len) {
                                if let Ok(s) = std::str::from_utf8(bytes) {
                                    out.push(s.to_string());
                                }
                            }
                        }
                    }
                }
            }
            i += UPN_OID.len();
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_upn_other_names() {
        let value = b"okms.domain:2b7c4bd5-0e1c-4f4f-9a7a-4e8f4d4c2a11";
        let mut der = vec![0x30, 0x00];
        der.extend_from_slice(&UPN_OID);
        der.push(0xa0);
        der.push((value.len() + 2) as u8);
        der.push(0x0c);
        der.push(value.len() as u8);
        der.extend_from_slice(value);
        let p = PeerCertificate {
            upn: upn_values(&der),
            ..Default::default()
        };
        assert_eq!(p.upn, vec![String::from_utf8(value.to_vec()).unwrap()]);
        let d1 = uuid::Uuid::parse_str("2b7c4bd5-0e1c-4f4f-9a7a-4e8f4d4c2a11").unwrap();
        let d2 = uuid::Uuid::new_v4();
        assert!(p.allows_okms_domain(&d1));
        assert!(!p.allows_okms_domain(&d2));
        let bad = PeerCertificate {
            upn: vec!["okms.domain:not-a-uuid".into()],
            ..Default::default()
        };
        assert!(
            !bad.allows_okms_domain(&d1),
            "a malformed restriction fails closed"
        );
        let two = PeerCertificate {
            upn: vec![format!("okms.domain:{d2}"), format!("okms.domain:{d1}")],
            ..Default::default()
        };
        assert!(two.allows_okms_domain(&d1) && two.allows_okms_domain(&d2));
        let any = PeerCertificate {
            upn: vec!["okms.domain:*".into()],
            ..Default::default()
        };
        assert!(any.allows_okms_domain(&d2));
        assert!(PeerCertificate::default().allows_okms_domain(&d2));
        assert!(upn_values(&[0x06, 0x0a]).is_empty());
    }

    #[test]
    fn subject_matching() {
        let p = PeerCertificate {
            subject: vec![("CN".into(), "app1".into()), ("O".into(), "acme".into())],
            ..Default::default()
        };
        assert!(p.subject_matches("CN=app1"));
        assert!(p.subject_matches("cn=app1, O=acme"));
        assert!(!p.subject_matches("CN=app2"));
        assert!(!p.subject_matches(""));
    }
}
