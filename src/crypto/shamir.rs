//! Shamir's secret sharing over GF(2^8), as Vault's seal uses it: each share is the secret's length of
//! polynomial values followed by one byte, the share's x coordinate.
//!
//! Every field operation runs in constant time: multiplication is a fixed 8-round shift-and-add with
//! masks instead of branches, and inversion is a fixed exponentiation (a^254). Vault's
//! CVE-2023-25000 was a timing leak from log/exp table lookups during combination; there are no
//! tables here.

use rand::RngCore;
use zeroize::Zeroizing;

/// Multiplication in GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1, branch-free.
fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0u8;
    for _ in 0..8 {
        p ^= a & 0u8.wrapping_sub(b & 1);
        let carry = a >> 7;
        a = (a << 1) ^ (0x1b & 0u8.wrapping_sub(carry));
        b >>= 1;
    }
    p
}

/// a^254 = a^-1 for a != 0 (and 0 for 0), by a fixed sequence of multiplications.
fn inv(a: u8) -> u8 {
    let a2 = mul(a, a);
    let a4 = mul(a2, a2);
    let a8 = mul(a4, a4);
    let a16 = mul(a8, a8);
    let a32 = mul(a16, a16);
    let a64 = mul(a32, a32);
    let a128 = mul(a64, a64);
    // 254 = 128 + 64 + 32 + 16 + 8 + 4 + 2
    mul(mul(mul(mul(mul(mul(a128, a64), a32), a16), a8), a4), a2)
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShamirError {
    #[error("the threshold must be between 1 and the number of shares, and shares at most 255")]
    BadParameters,
    #[error("not enough shares")]
    NotEnough,
    #[error("shares have different lengths")]
    Lengths,
    #[error("two shares have the same x coordinate")]
    Duplicate,
    #[error("a share is too short")]
    TooShort,
}

/// Splits `secret` into `n` shares, any `t` of which recover it.
pub fn split(secret: &[u8], n: usize, t: usize) -> Result<Vec<Zeroizing<Vec<u8>>>, ShamirError> {
    if t == 0 || t > n || n > 255 || secret.is_empty() {
        return Err(ShamirError::BadParameters);
    }
    let mut rng = rand::rngs::OsRng;
    // Distinct non-zero x coordinates in random order.
    let mut xs: Vec<u8> = (1..=255u8).collect();
    for i in (1..xs.len()).rev() {
        let j = (rng.next_u32() as usize) % (i + 1);
        xs.swap(i, j);
    }
    xs.truncate(n);
    let mut shares: Vec<Zeroizing<Vec<u8>>> = xs
        .iter()
        .map(|_| Zeroizing::new(Vec::with_capacity(secret.len() + 1)))
        .collect();
    let mut coeffs = Zeroizing::new(vec![0u8; t]);
    for &byte in secret {
        coeffs[0] = byte;
        rng.fill_bytes(&mut coeffs[1..]);
        for (share, &x) in shares.iter_mut().zip(&xs) {
            // Horner's rule from the highest coefficient down.
            let mut y = 0u8;
            for &c in coeffs.iter().rev() {
                y = mul(y, x) ^ c;
            }
            share.push(y);
        }
    }
    for (share, &x) in shares.iter_mut().zip(&xs) {
        share.push(x);
    }
    Ok(shares)
}

/// Recovers the secret from shares (Lagrange interpolation at x = 0). Any `t` valid shares give the
/// secret; fewer, or wrong ones, give an unrelated value (the caller checks it by opening a sealed
/// value with it).
pub fn combine(shares: &[Zeroizing<Vec<u8>>]) -> Result<Zeroizing<Vec<u8>>, ShamirError> {
    if shares.len() < 2 {
        // A threshold of 1 stores the secret itself as the share's value bytes.
        return match shares.first() {
            Some(s) if s.len() >= 2 => Ok(Zeroizing::new(s[..s.len() - 1].to_vec())),
            Some(_) => Err(ShamirError::TooShort),
            None => Err(ShamirError::NotEnough),
        };
    }
    let len = shares[0].len();
    if len < 2 {
        return Err(ShamirError::TooShort);
    }
    if shares.iter().any(|s| s.len() != len) {
        return Err(ShamirError::Lengths);
    }
    let xs: Vec<u8> = shares.iter().map(|s| s[len - 1]).collect();
    for i in 0..xs.len() {
        for j in i + 1..xs.len() {
            if xs[i] == xs[j] {
                return Err(ShamirError::Duplicate);
            }
        }
    }
    // Lagrange basis values at 0: l_i = prod_{j != i} x_j / (x_i ^ x_j).
    let basis: Vec<u8> = (0..xs.len())
        .map(|i| {
            let mut num = 1u8;
            let mut den = 1u8;
            for j in 0..xs.len() {
                if i != j {
                    num = mul(num, xs[j]);
                    den = mul(den, xs[i] ^ xs[j]);
                }
            }
            mul(num, inv(den))
        })
        .collect();
    let mut out = Zeroizing::new(vec![0u8; len - 1]);
    for (k, o) in out.iter_mut().enumerate() {
        let mut acc = 0u8;
        for (share, &l) in shares.iter().zip(&basis) {
            acc ^= mul(share[k], l);
        }
        *o = acc;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_arithmetic() {
        assert_eq!(mul(0x57, 0x83), 0xc1); // FIPS-197's worked example
        for a in 1..=255u8 {
            assert_eq!(mul(a, inv(a)), 1, "{a}");
        }
        assert_eq!(inv(0), 0);
    }

    #[test]
    fn any_threshold_subset_recovers() {
        let secret: Vec<u8> = (0..32).map(|i| i * 7 + 3).collect();
        let shares = split(&secret, 5, 3).unwrap();
        assert!(shares.iter().all(|s| s.len() == 33));
        for a in 0..5 {
            for b in a + 1..5 {
                for c in b + 1..5 {
                    let subset = vec![shares[a].clone(), shares[b].clone(), shares[c].clone()];
                    assert_eq!(combine(&subset).unwrap().as_slice(), secret.as_slice());
                }
            }
        }
        let two = vec![shares[0].clone(), shares[1].clone()];
        assert_ne!(combine(&two).unwrap().as_slice(), secret.as_slice());
        let one = split(&secret, 1, 1).unwrap();
        assert_eq!(combine(&one).unwrap().as_slice(), secret.as_slice());
        assert_eq!(split(&secret, 3, 4), Err(ShamirError::BadParameters));
        let dup = vec![shares[0].clone(), shares[0].clone()];
        assert_eq!(combine(&dup), Err(ShamirError::Duplicate));
    }
}
