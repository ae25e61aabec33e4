//! Which IP addresses a connector may reach once a name has been resolved.
//!
//! Decisions only: nothing here opens a socket, so every rule is unit-tested
//! without sending a packet.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not public.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// RFC 1918, CGNAT (100.64.0.0/10), unique-local IPv6 (fc00::/7).
    Private,
    /// 169.254.0.0/16 (cloud metadata lives here), fe80::/10.
    LinkLocal,
    /// Unspecified, broadcast, multicast, documentation, benchmarking and
    /// reserved ranges: never a destination.
    Reserved,
    /// Routable on the internet.
    Public,
}

impl AddressClass {
    pub fn describe(self) -> &'static str {
        match self {
            AddressClass::Loopback => "a loopback address",
            AddressClass::Private => "a private address",
            AddressClass::LinkLocal => "a link-local address",
            AddressClass::Reserved => "a reserved address",
            AddressClass::Public => "a public address",
        }
    }
}

/// Classifies `ip`; IPv4-mapped and IPv4-compatible IPv6 addresses are
/// judged as the IPv4 address they carry.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_private() || (a == 100 && (64..=127).contains(&b)) {
        AddressClass::Private
    } else if ip.is_link_local() {
        AddressClass::LinkLocal
    } else if ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        // 192.0.0.0/24 protocol assignments, 198.18.0.0/15 benchmarking
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..=19).contains(&b))
    {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        AddressClass::Loopback
    } else if first & 0xfe00 == 0xfc00 {
        AddressClass::Private
    } else if first & 0xffc0 == 0xfe80 {
        AddressClass::LinkLocal
    } else if ip.is_unspecified()
        || ip.is_multicast()
        // 2001:db8::/32 documentation, fec0::/10 deprecated site-local
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        || first & 0xffc0 == 0xfec0
    {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

/// The IPv4 address inside ::ffff:a.b.c.d (mapped), ::a.b.c.d (compatible)
/// or 64:ff9b::a.b.c.d (NAT64), which would otherwise smuggle a private
/// IPv4 target past the IPv6 rules.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified() {
        return Some(tail);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> AddressClass {
        classify(s.parse().unwrap())
    }

    #[test]
    fn loopback() {
        for a in ["127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(class(a), AddressClass::Loopback, "{a}");
        }
    }

    #[test]
    fn private_ranges_including_cgnat_and_unique_local() {
        for a in [
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.254",
            "fc00::1",
            "fd12:3456::1",
            "::ffff:10.1.2.3",
            "::ffff:192.168.0.1",
            "64:ff9b::10.0.0.1",
            "::10.0.0.1",
        ] {
            assert_eq!(class(a), AddressClass::Private, "{a}");
        }
    }

    #[test]
    fn link_local_including_cloud_metadata() {
        for a in [
            "169.254.169.254",
            "169.254.0.1",
            "fe80::1",
            "::ffff:169.254.169.254",
        ] {
            assert_eq!(class(a), AddressClass::LinkLocal, "{a}");
        }
    }

    #[test]
    fn reserved() {
        for a in [
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::",
            "ff02::1",
            "2001:db8::1",
        ] {
            assert_eq!(class(a), AddressClass::Reserved, "{a}");
        }
    }

    #[test]
    fn public() {
        for a in [
            "93.184.216.34",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(class(a), AddressClass::Public, "{a}");
        }
    }
}
