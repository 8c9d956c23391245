//! The peer listener's socket and the sockets a hole punch connects from.
//!
//! Both share the listening port: a NAT that keeps ports maps the punch's outgoing connection
//! to the same public port the tracker tells peers about, and the peer's incoming SYN then
//! matches it. So the listener and every punch socket set `SO_REUSEPORT` (and `SO_REUSEADDR`);
//! Linux lets only sockets of the same user share a port that way. The listener accepts both
//! IPv4 and IPv6 when it is bound to `[::]`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use tokio::net::{TcpSocket, TcpStream};

/// Binds the peer listener on `addr`; `[::]` (the default) also accepts IPv4, and falls back
/// to `0.0.0.0` where the machine has no IPv6.
pub fn bind_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    match bind(addr) {
        Err(e) if addr.ip() == IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED) && no_ipv6(&e) => {
            tracing::info!(error = %e, "no IPv6 here; listening for peers on IPv4 only");
            bind(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), addr.port()))
        }
        other => other,
    }
}

fn no_ipv6(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::EAFNOSUPPORT) | Some(nix::libc::EADDRNOTAVAIL)
    )
}

fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// One TCP connect to `remote` from `local` (the listener's address and port).
pub async fn connect_from(local: SocketAddr, remote: SocketAddr) -> io::Result<TcpStream> {
    let remote = match (local, remote) {
        (SocketAddr::V6(_), SocketAddr::V4(v4)) => {
            SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
        }
        _ => remote,
    };
    let socket = match local {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(local)?;
    socket.connect(remote).await
}

/// This machine's global IPv6 addresses (not loopback, link-local or unique-local).
pub fn global_ipv6() -> Vec<std::net::Ipv6Addr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut found: Vec<std::net::Ipv6Addr> = addrs
        .filter_map(|a| a.address?.as_sockaddr_in6().map(|s| s.ip()))
        .filter(p2p_proto::reach::is_global_ipv6)
        .collect();
    found.sort();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_can_leave_from_the_listening_port() {
        let listener = bind_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        let local = listener.local_addr().unwrap();
        let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = connect_from(local, target.local_addr().unwrap())
            .await
            .unwrap();
        assert_eq!(stream.local_addr().unwrap(), local);
        let (_, from) = target.accept().unwrap();
        assert_eq!(from, local);
    }

    #[test]
    fn only_global_ipv6_addresses_count() {
        assert!(p2p_proto::reach::is_global_ipv6(
            &"2001:db8:1::2".parse().unwrap()
        ));
        for ip in ["::1", "fe80::1", "fd12::1", "::ffff:1.2.3.4", "ff02::1"] {
            assert!(
                !p2p_proto::reach::is_global_ipv6(&ip.parse().unwrap()),
                "{ip}"
            );
        }
    }
}
