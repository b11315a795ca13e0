//! Text forms of IP addresses for `SocketAddress.address`, without the
//! formatting machinery: every endpoint of every ClusterLoadAssignment goes
//! through here, so it is on the hot path of translation.

use std::net::IpAddr;

/// `ip` as text, exactly as its `Display` writes it (dotted decimal for
/// IPv4; IPv6 goes through `Display`, RFC 5952 form).
pub fn ip_string(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let mut out = String::with_capacity(15);
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_decimal(&mut out, octet);
            }
            out
        }
        IpAddr::V6(_) => ip.to_string(),
    }
}

/// Appends `n` in decimal, without leading zeros.
fn push_decimal(out: &mut String, n: u8) {
    if n >= 100 {
        out.push(char::from(b'0' + n / 100));
    }
    if n >= 10 {
        out.push(char::from(b'0' + n / 10 % 10));
    }
    out.push(char::from(b'0' + n % 10));
}

#[cfg(test)]
mod tests {
    use super::ip_string;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    #[test]
    fn ipv4_matches_display_for_every_octet_value() {
        for n in 0..=255u8 {
            for ip in [
                Ipv4Addr::new(n, 0, 255, n),
                Ipv4Addr::new(10, n, n, 9),
                Ipv4Addr::new(127, 0, 0, n),
            ] {
                assert_eq!(ip_string(IpAddr::V4(ip)), ip.to_string());
            }
        }
    }

    #[test]
    fn ipv6_matches_display() {
        for ip in [
            Ipv6Addr::LOCALHOST,
            Ipv6Addr::UNSPECIFIED,
            "fd00::1:2".parse().unwrap(),
            "::ffff:10.0.0.1".parse().unwrap(),
        ] {
            assert_eq!(ip_string(IpAddr::V6(ip)), ip.to_string());
        }
    }
}
