//! ACL schemes (world, auth, digest, ip, super): validation, expansion and permission checks.

use base64::Engine;
use concord_jute::{Acl, ErrorCode, Id};
use sha1::{Digest, Sha1};
use std::net::IpAddr;

/// The digest id for `user:password`: `user:base64(sha1("user:password"))`.
pub fn digest_id(user_password: &str) -> Option<String> {
    let (user, _) = user_password.split_once(':')?;
    let hash = Sha1::digest(user_password.as_bytes());
    Some(format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    ))
}

/// Parses `a.b.c.d[/bits]` (or an IPv6 address with optional `/bits`).
fn parse_ip_acl(id: &str) -> Option<(IpAddr, u32)> {
    let (addr, bits) = match id.split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<u32>().ok()?)),
        None => (id, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    if bits > max {
        return None;
    }
    Some((ip, bits))
}

fn ip_matches(client: &str, acl_id: &str) -> bool {
    let Some((net, bits)) = parse_ip_acl(acl_id) else {
        return false;
    };
    let Ok(client) = client.parse::<IpAddr>() else {
        return false;
    };
    let (a, b, width) = match (net, client) {
        (IpAddr::V4(n), IpAddr::V4(c)) => (u32::from(n) as u128, u32::from(c) as u128, 32),
        (IpAddr::V6(n), IpAddr::V6(c)) => (u128::from(n), u128::from(c), 128),
        (IpAddr::V4(n), IpAddr::V6(c)) => match c.to_ipv4_mapped() {
            Some(c) => (u32::from(n) as u128, u32::from(c) as u128, 32),
            None => return false,
        },
        _ => return false,
    };
    if bits == 0 {
        return true;
    }
    let shift = width - bits;
    (a >> shift) == (b >> shift)
}

/// Whether an ACL id is well formed for its scheme.
fn id_is_valid(id: &Id) -> bool {
    match id.scheme.as_str() {
        "world" => id.id == "anyone",
        "digest" => id.id.split(':').count() == 2,
        "ip" => parse_ip_acl(&id.id).is_some(),
        _ => false,
    }
}

/// Validates a requested ACL and expands `auth` entries into the caller's authenticated ids,
/// as ZooKeeper's fixupACL does. An empty or malformed ACL is INVALIDACL.
pub fn fixup(acl: &[Acl], auth: &[Id]) -> Result<Vec<Acl>, ErrorCode> {
    let mut out: Vec<Acl> = Vec::with_capacity(acl.len());
    let mut push = |a: Acl| {
        if !out.contains(&a) {
            out.push(a);
        }
    };
    if acl.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    for a in acl {
        if a.id.scheme == "auth" {
            let mut any = false;
            // Only authenticated schemes count: digest (ip is not "authenticated" in ZooKeeper).
            for cid in auth.iter().filter(|i| i.scheme == "digest") {
                any = true;
                push(Acl {
                    perms: a.perms,
                    id: cid.clone(),
                });
            }
            if !any {
                return Err(ErrorCode::InvalidAcl);
            }
        } else if id_is_valid(&a.id) {
            push(a.clone());
        } else {
            return Err(ErrorCode::InvalidAcl);
        }
    }
    Ok(out)
}

/// Checks that `auth` grants `perm` under `acl` (ZooKeeper's checkACL).
pub fn check(acl: &[Acl], perm: i32, auth: &[Id]) -> Result<(), ErrorCode> {
    if acl.is_empty() || auth.iter().any(|i| i.scheme == "super") {
        return Ok(());
    }
    for a in acl {
        if a.perms & perm == 0 {
            continue;
        }
        let granted = match a.id.scheme.as_str() {
            "world" => a.id.id == "anyone",
            "digest" => auth.iter().any(|i| i.scheme == "digest" && i.id == a.id.id),
            "ip" => auth
                .iter()
                .any(|i| i.scheme == "ip" && ip_matches(&i.id, &a.id.id)),
            _ => false,
        };
        if granted {
            return Ok(());
        }
    }
    Err(ErrorCode::NoAuth)
}

/// The ACL as a caller without ADMIN sees it: digest hashes replaced by `x` (ZOOKEEPER-1392).
pub fn redact(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|a| {
            if a.id.scheme == "digest" {
                let user = a.id.id.split(':').next().unwrap_or("");
                Acl {
                    perms: a.perms,
                    id: Id::new("digest", format!("{user}:x")),
                }
            } else {
                a.clone()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_jute::perms;

    #[test]
    fn digest_matches_zookeeper() {
        // Value produced by ZooKeeper's DigestAuthenticationProvider.generateDigest("super:test").
        assert_eq!(
            digest_id("super:test").unwrap(),
            "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
        );
        assert_eq!(digest_id("nocolon"), None);
    }

    #[test]
    fn fixup_expands_auth_and_rejects_bad_ids() {
        let who = vec![Id::new("ip", "127.0.0.1"), Id::new("digest", "u:h")];
        let got = fixup(
            &[Acl {
                perms: 31,
                id: Id::new("auth", ""),
            }],
            &who,
        )
        .unwrap();
        assert_eq!(
            got,
            vec![Acl {
                perms: 31,
                id: Id::new("digest", "u:h")
            }]
        );
        let anon = vec![Id::new("ip", "127.0.0.1")];
        assert_eq!(
            fixup(
                &[Acl {
                    perms: 31,
                    id: Id::new("auth", "")
                }],
                &anon
            ),
            Err(ErrorCode::InvalidAcl)
        );
        assert_eq!(fixup(&[], &anon), Err(ErrorCode::InvalidAcl));
        for bad in [
            Id::new("world", "someone"),
            Id::new("digest", "nocolon"),
            Id::new("ip", "300.1.1.1"),
            Id::new("ip", "10.0.0.0/33"),
            Id::new("nosuch", "x"),
        ] {
            assert_eq!(
                fixup(
                    &[Acl {
                        perms: 1,
                        id: bad.clone()
                    }],
                    &anon
                ),
                Err(ErrorCode::InvalidAcl),
                "{bad:?}"
            );
        }
        assert!(fixup(
            &[Acl {
                perms: 1,
                id: Id::new("ip", "10.0.0.0/8")
            }],
            &anon
        )
        .is_ok());
    }

    #[test]
    fn permission_checks() {
        let acl = vec![
            Acl {
                perms: perms::READ,
                id: Id::new("world", "anyone"),
            },
            Acl {
                perms: perms::ALL,
                id: Id::new("digest", "u:h"),
            },
            Acl {
                perms: perms::WRITE,
                id: Id::new("ip", "10.1.0.0/16"),
            },
        ];
        let anon = vec![Id::new("ip", "127.0.0.1")];
        assert!(check(&acl, perms::READ, &anon).is_ok());
        assert_eq!(check(&acl, perms::WRITE, &anon), Err(ErrorCode::NoAuth));
        assert!(check(&acl, perms::WRITE, &[Id::new("ip", "10.1.2.3")]).is_ok());
        assert_eq!(
            check(&acl, perms::WRITE, &[Id::new("ip", "10.2.2.3")]),
            Err(ErrorCode::NoAuth)
        );
        assert!(check(&acl, perms::ADMIN, &[Id::new("digest", "u:h")]).is_ok());
        assert!(check(&acl, perms::ADMIN, &[Id::new("super", "")]).is_ok());
        assert!(check(&[], perms::ADMIN, &anon).is_ok());
        assert!(ip_matches("1.2.3.4", "0.0.0.0/0"));
        assert!(ip_matches("::ffff:10.1.2.3", "10.1.0.0/16"));
    }

    #[test]
    fn redaction_hides_hashes() {
        let acl = vec![Acl {
            perms: 31,
            id: Id::new("digest", "bob:abc="),
        }];
        assert_eq!(redact(&acl)[0].id.id, "bob:x");
    }
}
