//! What a verified client certificate says: its subject, its SANs, and the UPN otherName values that
//! OKMS access certificates carry (`okms.domain:<uuid>`, OID 1.3.6.1.4.1.311.20.2.3).
//!
//! The certificate is parsed (x509-parser), never scanned: a UPN counts only when it is an otherName
//! of the subjectAltName extension, and a subject rule is compared with the whole RDN sequence. A
//! certificate kvseal cannot parse completely authenticates nothing (fail closed).

use openssl::x509::X509Ref;
use x509_parser::asn1_rs::{Any, Class, FromDer, Utf8String};
use x509_parser::extensions::GeneralName;
use x509_parser::x509::X509Name;

/// OID of the Microsoft UPN otherName.
const UPN_OID: &str = "1.3.6.1.4.1.311.20.2.3";

/// One RDN: its attributes as (OID in dotted form, value), sorted (an RDN is a SET).
type Rdn = Vec<(String, String)>;

/// The identity-relevant parts of a verified client certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerCertificate {
    /// The subject's RDNs in certificate (DER) order; `None` when an attribute is not a string kvseal
    /// can compare (such a subject matches no rule).
    pub subject: Option<Vec<Rdn>>,
    pub san_dns: Vec<String>,
    pub san_uri: Vec<String>,
    /// UPN otherName values of the subjectAltName extension.
    pub upn: Vec<String>,
}

impl PeerCertificate {
    /// The identity of a certificate openssl has verified; `None` (logged) when it cannot be parsed
    /// completely, so that a part kvseal cannot read never widens what the certificate may do.
    pub fn from_x509(cert: &X509Ref) -> Option<Self> {
        let parsed = cert
            .to_der()
            .map_err(|e| e.to_string())
            .and_then(|der| Self::from_der(&der));
        match parsed {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(error = %e, "client certificate not usable for authentication");
                None
            }
        }
    }

    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        let (rest, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| format!("cannot parse the certificate: {e}"))?;
        if !rest.is_empty() {
            return Err("trailing data after the certificate".into());
        }
        let mut out = Self {
            subject: subject_rdns(cert.subject()),
            ..Self::default()
        };
        let san = cert
            .subject_alternative_name()
            .map_err(|e| format!("subjectAltName: {e}"))?;
        for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
            match name {
                GeneralName::DNSName(d) => out.san_dns.push(d.to_string()),
                GeneralName::URI(u) => out.san_uri.push(u.to_string()),
                GeneralName::OtherName(oid, value) if oid.to_id_string() == UPN_OID => {
                    out.upn.push(upn_value(value)?);
                }
                GeneralName::Invalid(..) => return Err("subjectAltName: invalid name".into()),
                _ => {}
            }
        }
        Ok(out)
    }

    /// Whether the subject is exactly `want`, an RFC 4514 string (most specific RDN first, as
    /// `openssl x509 -noout -subject -nameopt RFC2253` prints it): the same RDNs in the same order,
    /// each with the same attributes and values. `CN=app1` does not match `/CN=evil/CN=app1` nor
    /// `/O=acme/CN=app1`.
    pub fn subject_matches(&self, want: &str) -> bool {
        match (&self.subject, parse_dn(want)) {
            (Some(have), Ok(want)) => *have == want,
            _ => false,
        }
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

/// The subject's RDNs, or `None` when an attribute value is not a plain string type.
fn subject_rdns(name: &X509Name<'_>) -> Option<Vec<Rdn>> {
    name.iter()
        .map(|rdn| {
            let mut attrs = rdn
                .iter()
                .map(|a| Some((a.attr_type().to_id_string(), a.as_str().ok()?.to_string())))
                .collect::<Option<Rdn>>()?;
            attrs.sort();
            Some(attrs)
        })
        .collect()
}

/// The value of a UPN otherName: `[0] EXPLICIT UTF8String` and nothing else.
fn upn_value(der: &[u8]) -> Result<String, String> {
    let bad = || "subjectAltName: malformed UPN otherName".to_string();
    let (rest, outer) = Any::from_der(der).map_err(|_| bad())?;
    if !rest.is_empty() || outer.class() != Class::ContextSpecific || outer.tag().0 != 0 {
        return Err(bad());
    }
    let (rest, s) = Utf8String::from_der(outer.data).map_err(|_| bad())?;
    if !rest.is_empty() {
        return Err(bad());
    }
    Ok(s.string())
}

/// Attribute names accepted in a subject rule (RFC 4514's table plus the usual extras); any other
/// attribute is written as its dotted OID.
const ATTRIBUTE_NAMES: &[(&str, &str)] = &[
    ("CN", "2.5.4.3"),
    ("SERIALNUMBER", "2.5.4.5"),
    ("C", "2.5.4.6"),
    ("L", "2.5.4.7"),
    ("ST", "2.5.4.8"),
    ("STREET", "2.5.4.9"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("UID", "0.9.2342.19200300.100.1.1"),
    ("EMAILADDRESS", "1.2.840.113549.1.9.1"),
];

fn attribute_oid(name: &str) -> Result<String, String> {
    if let Some((_, oid)) = ATTRIBUTE_NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
    {
        return Ok((*oid).to_string());
    }
    let dotted = name.split('.').count() >= 2
        && name
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if dotted {
        Ok(name.to_string())
    } else {
        Err(format!(
            "unknown attribute {name:?} (use CN, O, OU, C, L, ST, STREET, DC, UID, serialNumber, emailAddress or a dotted OID)"
        ))
    }
}

/// Parses an RFC 4514 distinguished name into RDNs in certificate order (the string lists the most
/// specific RDN first, the certificate last). Escapes (`\,`, `\+`, `\\`, `\2C`, ...) are decoded;
/// spaces around `,`, `+` and `=` are ignored; `#`-hex values are refused.
pub fn parse_dn(s: &str) -> Result<Vec<Rdn>, String> {
    // Split into (text, escaped) characters first, so that separators are found only unescaped.
    let mut chars: Vec<(char, bool)> = Vec::new();
    let mut bytes = s.as_bytes();
    let mut pending: Vec<u8> = Vec::new();
    let flush = |pending: &mut Vec<u8>, chars: &mut Vec<(char, bool)>| -> Result<(), String> {
        if !pending.is_empty() {
            let text = std::str::from_utf8(pending)
                .map_err(|_| "a \\XX escape is not UTF-8".to_string())?;
            chars.extend(text.chars().map(|c| (c, true)));
            pending.clear();
        }
        Ok(())
    };
    while let Some((&b, rest)) = bytes.split_first() {
        if b == b'\\' {
            let hex = rest
                .get(..2)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                pending.push(v);
                bytes = &rest[2..];
                continue;
            }
            flush(&mut pending, &mut chars)?;
            let text = std::str::from_utf8(rest).map_err(|_| "not UTF-8".to_string())?;
            let c = text
                .chars()
                .next()
                .ok_or_else(|| "a trailing \\ escapes nothing".to_string())?;
            chars.push((c, true));
            bytes = &rest[c.len_utf8()..];
            continue;
        }
        flush(&mut pending, &mut chars)?;
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
        let c = text.chars().next().unwrap_or_default();
        chars.push((c, false));
        bytes = &bytes[c.len_utf8().max(1)..];
    }
    flush(&mut pending, &mut chars)?;

    let trim = |part: &[(char, bool)]| -> String {
        let start = part
            .iter()
            .position(|(c, esc)| *esc || !c.is_whitespace())
            .unwrap_or(part.len());
        let end = part
            .iter()
            .rposition(|(c, esc)| *esc || !c.is_whitespace())
            .map_or(start, |e| e + 1);
        part[start..end.max(start)].iter().map(|(c, _)| c).collect()
    };
    let mut rdns = Vec::new();
    for rdn in chars.split(|&(c, esc)| c == ',' && !esc) {
        let mut attrs = Vec::new();
        for atv in rdn.split(|&(c, esc)| c == '+' && !esc) {
            let eq = atv
                .iter()
                .position(|&(c, esc)| c == '=' && !esc)
                .ok_or_else(|| format!("{:?} is not TYPE=value", trim(atv)))?;
            let (name, value) = (trim(&atv[..eq]), &atv[eq + 1..]);
            if value.first().is_some_and(|&(c, esc)| c == '#' && !esc) {
                return Err("#-encoded values are not supported".into());
            }
            let value = trim(value);
            if name.is_empty() || value.is_empty() {
                return Err(format!("{name:?}={value:?}: empty attribute or value"));
            }
            attrs.push((attribute_oid(&name)?, value));
        }
        attrs.sort();
        rdns.push(attrs);
    }
    rdns.reverse();
    Ok(rdns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::asn1::{Asn1Object, Asn1OctetString};
    use openssl::hash::MessageDigest;
    use openssl::x509::extension::SubjectAlternativeName;
    use openssl::x509::{X509Extension, X509NameBuilder, X509};

    const D1: &str = "2b7c4bd5-0e1c-4f4f-9a7a-4e8f4d4c2a11";
    const D2: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";

    /// DER of a UTF8String.
    fn utf8(s: &str) -> Vec<u8> {
        let mut v = vec![0x0c, s.len() as u8];
        v.extend_from_slice(s.as_bytes());
        v
    }

    /// The DER bytes the old scanner matched on: UPN OID, `[0]`, UTF8String.
    fn smuggled_upn(value: &str) -> Vec<u8> {
        let inner = utf8(value);
        let mut v = vec![
            0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x14, 0x02, 0x03, 0xa0,
        ];
        v.push(inner.len() as u8);
        v.extend(inner);
        // An OCTET STRING holding it: any DER value will do for an unknown extension.
        let mut wrapped = vec![0x04, v.len() as u8];
        wrapped.extend(v);
        wrapped
    }

    /// A self-signed certificate with `subject` (openssl `-subj` order, as (attr, value) pairs),
    /// SAN UPN values, and an extra extension of OID 1.3.6.1.4.1.99999.1 with DER contents `extra`.
    fn cert(subject: &[(&str, &str)], upns: &[&str], extra: Option<Vec<u8>>) -> PeerCertificate {
        let group =
            openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        let key = openssl::pkey::PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap())
            .unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        for (k, v) in subject {
            name.append_entry_by_text(k, v).unwrap();
        }
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        if !upns.is_empty() {
            let mut san = SubjectAlternativeName::new();
            san.dns("app1.internal");
            for u in upns {
                san.other_name2(Asn1Object::from_str(UPN_OID).unwrap(), &utf8(u));
            }
            let ext = san.build(&b.x509v3_context(None, None)).unwrap();
            b.append_extension(ext).unwrap();
        }
        if let Some(der) = extra {
            let oid = Asn1Object::from_str("1.3.6.1.4.1.99999.1").unwrap();
            let contents = Asn1OctetString::new_from_bytes(&der).unwrap();
            b.append_extension(X509Extension::new_from_der(&oid, false, &contents).unwrap())
                .unwrap();
        }
        b.sign(&key, MessageDigest::sha256()).unwrap();
        PeerCertificate::from_x509(&b.build()).expect("a well-formed certificate parses")
    }

    fn uuid(s: &str) -> uuid::Uuid {
        uuid::Uuid::parse_str(s).unwrap()
    }

    #[test]
    fn upn_comes_from_the_san_other_name_only() {
        let d1 = format!("okms.domain:{D1}");
        // (certificate, domain asked for, allowed)
        let cases = [
            (
                "no UPN: unrestricted",
                cert(&[("CN", "a")], &[], None),
                D2,
                true,
            ),
            ("UPN d1 on d1", cert(&[("CN", "a")], &[&d1], None), D1, true),
            (
                "UPN d1 on d2",
                cert(&[("CN", "a")], &[&d1], None),
                D2,
                false,
            ),
            (
                "okms.domain:* smuggled in another extension does not lift the d1 restriction",
                cert(&[("CN", "a")], &[&d1], Some(smuggled_upn("okms.domain:*"))),
                D2,
                false,
            ),
            (
                "a d2 UPN smuggled in another extension does not add d2",
                cert(
                    &[("CN", "a")],
                    &[&d1],
                    Some(smuggled_upn(&format!("okms.domain:{D2}"))),
                ),
                D2,
                false,
            ),
            (
                "a smuggled UPN in a subject attribute is not a UPN",
                cert(&[("CN", &format!("okms.domain:{D1}"))], &[], None),
                D2,
                true,
            ),
            (
                "okms.domain:* in the SAN",
                cert(&[("CN", "a")], &["okms.domain:*"], None),
                D2,
                true,
            ),
            (
                "a non-UUID restriction fails closed",
                cert(&[("CN", "a")], &["okms.domain:nope"], None),
                D1,
                false,
            ),
        ];
        for (what, peer, domain, allowed) in cases {
            assert_eq!(
                peer.allows_okms_domain(&uuid(domain)),
                allowed,
                "{what}: {peer:?}"
            );
        }
        let p = cert(&[("CN", "a")], &[&d1], Some(smuggled_upn("okms.domain:*")));
        assert_eq!(p.upn, vec![d1]);
        assert_eq!(p.san_dns, vec!["app1.internal".to_string()]);
    }

    #[test]
    fn subject_matches_the_whole_rdn_sequence() {
        // (certificate subject in -subj order, rule, matches)
        type Subject<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(Subject, &str, bool)] = &[
            (&[("CN", "app1")], "CN=app1", true),
            (&[("CN", "app1")], "cn = app1", true),
            (&[("CN", "app1")], "2.5.4.3=app1", true),
            (&[("CN", "evil"), ("CN", "app1")], "CN=app1", false),
            (&[("CN", "app1"), ("CN", "evil")], "CN=app1", false),
            (&[("O", "acme"), ("CN", "app1")], "CN=app1", false),
            (&[("O", "acme"), ("CN", "app1")], "CN=app1,O=acme", true),
            (&[("O", "acme"), ("CN", "app1")], "CN=app1, O=acme", true),
            (&[("O", "acme"), ("CN", "app1")], "O=acme,CN=app1", false),
            (&[("CN", "app1")], "CN=App1", false),
            (&[("CN", "app1")], "CN=app2", false),
            (&[("CN", "a,b")], "CN=a\\,b", true),
            (&[("CN", "a,b")], "CN=a\\2Cb", true),
            (&[("CN", "a")], "CN=a,CN=b", false),
            (&[("CN", "app1")], "", false),
            (&[("CN", "app1")], "CN", false),
        ];
        for (subject, rule, want) in cases {
            let peer = cert(subject, &[], None);
            assert_eq!(peer.subject_matches(rule), *want, "{subject:?} vs {rule:?}");
        }
    }

    #[test]
    fn subject_rules_that_do_not_parse_are_errors() {
        for (rule, why) in [
            ("", "is not TYPE=value"),
            ("CN", "is not TYPE=value"),
            ("XX=a", "unknown attribute"),
            ("CN=#0c0161", "#-encoded"),
            ("CN=", "empty"),
            ("CN=a\\", "escapes nothing"),
        ] {
            let e = parse_dn(rule).expect_err(rule);
            assert!(e.contains(why), "{rule:?}: {e}");
        }
        assert_eq!(
            parse_dn("CN=a+O=b, C=FR").unwrap(),
            vec![
                vec![("2.5.4.6".to_string(), "FR".to_string())],
                vec![
                    ("2.5.4.10".to_string(), "b".to_string()),
                    ("2.5.4.3".to_string(), "a".to_string())
                ],
            ]
        );
    }

    #[test]
    fn a_malformed_upn_makes_the_certificate_unusable() {
        assert!(
            upn_value(&[0xa0, 0x03, 0x04, 0x01, 0x41]).is_err(),
            "not UTF8String"
        );
        assert!(
            upn_value(&[0xa1, 0x03, 0x0c, 0x01, 0x41]).is_err(),
            "not [0]"
        );
        assert!(
            upn_value(&[0xa0, 0x03, 0x0c, 0x01, 0x41, 0x00]).is_err(),
            "trailing"
        );
        assert_eq!(upn_value(&[0xa0, 0x03, 0x0c, 0x01, 0x41]).unwrap(), "A");
        assert!(PeerCertificate::from_der(b"not a certificate").is_err());
    }
}
