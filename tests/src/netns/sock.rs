//! TCP sockets made inside a namespace by the test itself: listeners, connections with a
//! deadline, and the shared-port sockets of a simultaneous open (a listener and an outgoing
//! connection on one local port, as a daemon punching a hole has).

use super::ns::Netns;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, bind, connect, getsockopt, listen,
    setsockopt, socket, sockopt,
};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

impl Netns {
    /// A listener on `addr` inside the namespace.
    pub fn tcp_listen(&self, addr: SocketAddr) -> io::Result<TcpListener> {
        self.enter(|| TcpListener::bind(addr))
    }

    /// A listener on `addr` inside the namespace with SO_REUSEADDR and SO_REUSEPORT, so that
    /// [`tcp_connect_from`](Self::tcp_connect_from) can connect out from the same port.
    pub fn tcp_listen_shared(&self, addr: SocketAddr) -> io::Result<TcpListener> {
        self.enter(|| {
            let fd = shared_socket(addr)?;
            listen(&fd, Backlog::new(16).map_err(io::Error::from)?)?;
            let listener = TcpListener::from(fd);
            listener.set_nonblocking(false)?;
            Ok(listener)
        })
    }

    /// A TCP connection from inside the namespace to `remote`, from any port; an error of
    /// kind `TimedOut` if it is not made within `timeout`.
    pub fn tcp_connect(&self, remote: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        self.enter(|| TcpStream::connect_timeout(&remote, timeout))
    }

    /// A TCP connection from `local` (SO_REUSEADDR and SO_REUSEPORT set, so it may share the
    /// port with a listener or with other connections to other destinations) to `remote`;
    /// an error of kind `TimedOut` if it is not made within `timeout`.
    pub fn tcp_connect_from(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        self.enter(|| {
            let fd = shared_socket(local)?;
            connect_with_deadline(fd, remote, timeout)
        })
    }
}

/// A non-blocking TCP socket bound to `local` with SO_REUSEADDR and SO_REUSEPORT.
fn shared_socket(local: SocketAddr) -> io::Result<OwnedFd> {
    let family = match local {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    setsockopt(&fd, sockopt::ReusePort, &true)?;
    bind(fd.as_raw_fd(), &SockaddrStorage::from(local))?;
    Ok(fd)
}

/// Connects the non-blocking `fd` to `remote`, waiting at most `timeout`; the stream it
/// gives back is blocking.
fn connect_with_deadline(
    fd: OwnedFd,
    remote: SocketAddr,
    timeout: Duration,
) -> io::Result<TcpStream> {
    match connect(fd.as_raw_fd(), &SockaddrStorage::from(remote)) {
        Ok(()) | Err(Errno::EINPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    let millis = PollTimeout::try_from(timeout).map_err(io::Error::other)?;
    let ready = {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
        loop {
            match poll(&mut fds, millis) {
                Err(Errno::EINTR) => continue,
                other => break other?,
            }
        }
    };
    if ready == 0 {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connecting to {remote} timed out after {timeout:?}"),
        ));
    }
    match getsockopt(&fd, sockopt::SocketError)? {
        0 => {}
        errno => return Err(io::Error::from_raw_os_error(errno)),
    }
    let stream = TcpStream::from(fd);
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// The next connection `listener` accepts within `timeout`; an error of kind `TimedOut` if
/// none comes.
pub fn accept_within(
    listener: &TcpListener,
    timeout: Duration,
) -> io::Result<(TcpStream, SocketAddr)> {
    let millis = PollTimeout::try_from(timeout).map_err(io::Error::other)?;
    let ready = {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        loop {
            match poll(&mut fds, millis) {
                Err(Errno::EINTR) => continue,
                other => break other?,
            }
        }
    };
    if ready == 0 {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no connection within {timeout:?}"),
        ));
    }
    listener.accept()
}

/// Whether a connection is waiting in `listener`'s queue, without waiting for one.
pub fn has_pending(listener: &TcpListener) -> io::Result<bool> {
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    Ok(poll(&mut fds, PollTimeout::ZERO)? > 0)
}
