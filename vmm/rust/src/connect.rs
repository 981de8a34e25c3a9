//! `connect(2)` that never waits. std's `UnixStream::connect` blocks while the listener's backlog
//! is full — with systemd socket activation and the daemon down, for as long as the daemon stays
//! down — and no timeout covers it. Like the C library, this opens the socket non-blocking, so a
//! full backlog is `EAGAIN` at once (a connect failure: the fallback answers and the VMM retries
//! later), then makes it blocking again for the timed reads and writes that follow.
//!
//! std has no non-blocking connect for Unix sockets, nor `SOCK_SEQPACKET` sockets at all (the
//! attach socket's type), so `socket` and `connect` are called through the C library std already
//! links; no crate is added.

use std::io;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;

/// A stream connection to the daemon's plugin socket.
pub(crate) fn connect(path: &Path) -> io::Result<UnixStream> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    return sys::open(path, sys::SOCK_STREAM).map(UnixStream::from);
    // Elsewhere a Unix listener with a full backlog refuses (`ECONNREFUSED`) instead of waiting.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    UnixStream::connect(path)
}

/// A `SOCK_SEQPACKET` connection to the daemon's attach socket. std has no type for it; a
/// `UnixDatagram` holds it, whose `recv`, timeouts and fd are plain socket calls that work on any
/// socket type (it is never used to connect or address a datagram).
pub(crate) fn connect_seqpacket(path: &Path) -> io::Result<UnixDatagram> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    return sys::open(path, sys::SOCK_SEQPACKET).map(UnixDatagram::from);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    Err(io::Error::new(io::ErrorKind::Unsupported, "the attach socket needs Linux"))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod sys {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::raw::{c_char, c_int};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::UnixDatagram;
    use std::path::Path;

    /// `struct sockaddr_un` on Linux.
    #[repr(C)]
    struct SockaddrUn {
        sun_family: u16,
        sun_path: [c_char; 108],
    }

    extern "C" {
        fn socket(domain: c_int, kind: c_int, protocol: c_int) -> c_int;
        fn connect(fd: c_int, addr: *const SockaddrUn, len: u32) -> c_int;
    }

    const AF_UNIX: c_int = 1;
    #[cfg(any(
        target_arch = "mips",
        target_arch = "mips32r6",
        target_arch = "mips64",
        target_arch = "mips64r6"
    ))]
    pub(super) const SOCK_STREAM: c_int = 2;
    #[cfg(not(any(
        target_arch = "mips",
        target_arch = "mips32r6",
        target_arch = "mips64",
        target_arch = "mips64r6"
    )))]
    pub(super) const SOCK_STREAM: c_int = 1;
    /// The same number on every Linux architecture.
    pub(super) const SOCK_SEQPACKET: c_int = 5;
    #[cfg(any(target_arch = "sparc", target_arch = "sparc64"))]
    const SOCK_CLOEXEC: c_int = 0x40_0000;
    #[cfg(not(any(target_arch = "sparc", target_arch = "sparc64")))]
    const SOCK_CLOEXEC: c_int = 0o2_000_000;

    pub(super) fn open(path: &Path, kind: c_int) -> io::Result<OwnedFd> {
        // The address as std builds it: NUL-terminated, or abstract when the name starts with NUL.
        let bytes = path.as_os_str().as_bytes();
        let mut addr = SockaddrUn { sun_family: AF_UNIX as u16, sun_path: [0; 108] };
        if bytes.len() >= addr.sun_path.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "socket path must be shorter than 108 bytes",
            ));
        }
        for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
            *dst = *src as c_char;
        }
        let terminator = usize::from(!bytes.is_empty() && bytes[0] != 0);
        let len = (std::mem::size_of::<u16>() + bytes.len() + terminator) as u32;

        // SAFETY: plain syscalls on an fd this function owns; `addr` outlives the call.
        let fd = unsafe { socket(AF_UNIX, kind | SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and nothing else holds it. A datagram socket's handle only
        // to switch blocking mode, which is the same call for every socket type.
        let socket = UnixDatagram::from(unsafe { OwnedFd::from_raw_fd(fd) });
        socket.set_nonblocking(true)?;
        // SAFETY: as above.
        if unsafe { connect(socket.as_raw_fd(), &addr, len) } < 0 {
            // EAGAIN (the backlog is full) and EINPROGRESS alike: not connected now, so not at all.
            return Err(io::Error::last_os_error());
        }
        socket.set_nonblocking(false)?;
        Ok(OwnedFd::from(socket))
    }
}
