//! Connections from another source address: the suite's attacker is `127.0.0.2`, a second
//! loopback address (all of 127.0.0.0/8 is loopback on Linux), so a tracker's per-source caps
//! tell it apart from the honest clients on 127.0.0.1.

use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};

/// The attacker's source address.
pub const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// A TCP connection to `to` from `from` (an IPv4 address of this machine), any port.
pub fn tcp_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let (IpAddr::V4(from), SocketAddr::V4(to)) = (from, to) else {
        return Err(std::io::Error::other("IPv4 only"));
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(SocketAddrV4::new(from, 0)),
    )?;
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(to))?;
    Ok(TcpStream::from(fd))
}
