//! `sendmsg(2)` with one fd as `SCM_RIGHTS`: how a vCPU fd reaches the daemon over the attach
//! socket. std has no way to pass fds, and no crate is added, so the call and the structs it takes
//! are declared here by hand, as Linux lays them out on 64-bit little-endian targets (x86-64,
//! arm64), where glibc and musl agree: musl's `int` + padding in place of glibc's `size_t` puts the
//! value in the same bytes. The tests below check the layout math (`CMSG_SPACE`, `CMSG_LEN`,
//! `CMSG_DATA`) against the kernel's numbers. Elsewhere attaching is unsupported.

use std::io;
use std::os::fd::RawFd;

#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    target_pointer_width = "64",
    target_endian = "little"
))]
mod sys {
    use std::os::raw::{c_int, c_void};

    pub(super) const SOL_SOCKET: c_int = 1;
    pub(super) const SCM_RIGHTS: c_int = 1;
    /// No SIGPIPE when the daemon closed the connection: EPIPE instead.
    pub(super) const MSG_NOSIGNAL: c_int = 0x4000;

    #[repr(C)]
    pub(super) struct Iovec {
        pub base: *const c_void,
        pub len: usize,
    }

    #[repr(C)]
    pub(super) struct Msghdr {
        pub name: *mut c_void,
        pub namelen: u32,
        pub iov: *const Iovec,
        pub iovlen: usize,
        pub control: *mut c_void,
        pub controllen: usize,
        pub flags: c_int,
    }

    #[repr(C)]
    pub(super) struct Cmsghdr {
        pub len: usize,
        pub level: c_int,
        pub kind: c_int,
    }

    /// A control buffer of `CMSG_SPACE(sizeof(int))` bytes, aligned as `cmsghdr`, holding one fd.
    #[repr(C)]
    pub(super) struct OneFd {
        pub hdr: Cmsghdr,
        pub fd: c_int,
        pub pad: c_int,
    }

    /// `CMSG_ALIGN`: to the alignment of `size_t`.
    pub(super) const fn align(n: usize) -> usize {
        let a = std::mem::size_of::<usize>();
        (n + a - 1) & !(a - 1)
    }

    /// `CMSG_SPACE(n)`: what a control message with `n` data bytes takes in the buffer.
    pub(super) const fn space(n: usize) -> usize {
        align(std::mem::size_of::<Cmsghdr>()) + align(n)
    }

    /// `CMSG_LEN(n)`: the value of `cmsg_len` for `n` data bytes.
    pub(super) const fn len(n: usize) -> usize {
        align(std::mem::size_of::<Cmsghdr>()) + n
    }

    /// Look without taking, and without waiting.
    pub(super) const MSG_PEEK: c_int = 0x2;
    pub(super) const MSG_DONTWAIT: c_int = 0x40;

    extern "C" {
        pub(super) fn sendmsg(fd: c_int, msg: *const Msghdr, flags: c_int) -> isize;
        pub(super) fn recv(fd: c_int, buf: *mut c_void, len: usize, flags: c_int) -> isize;
    }
}

/// True when `socket` can no longer carry a request: its peer closed it (end of file or an
/// error), or a message is waiting that no request asked for. Takes nothing from it.
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    target_pointer_width = "64",
    target_endian = "little"
))]
pub(crate) fn peer_gone(socket: RawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: `byte` is a live one-byte buffer for the call.
    let n = unsafe {
        sys::recv(socket, std::ptr::addr_of_mut!(byte).cast(), 1, sys::MSG_PEEK | sys::MSG_DONTWAIT)
    };
    n >= 0
        || !matches!(
            io::Error::last_os_error().kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
        )
}

#[cfg(not(all(
    any(target_os = "linux", target_os = "android"),
    target_pointer_width = "64",
    target_endian = "little"
)))]
pub(crate) fn peer_gone(_socket: RawFd) -> bool {
    false // no attach connection is ever opened here
}

/// Sends `bytes` as one message on `socket`, with `fd` beside it as `SCM_RIGHTS` when given. The
/// kernel passes the receiver its own copy; `fd` stays the caller's. A partial send cannot happen
/// on a SEQPACKET socket: the message goes whole or not at all.
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    target_pointer_width = "64",
    target_endian = "little"
))]
pub(crate) fn send_with_fd(socket: RawFd, bytes: &[u8], fd: Option<RawFd>) -> io::Result<()> {
    use std::mem::size_of;
    use std::ptr;
    use sys::*;

    let iov = Iovec { base: bytes.as_ptr().cast(), len: bytes.len() };
    let mut control = OneFd {
        hdr: Cmsghdr { len: len(size_of::<i32>()), level: SOL_SOCKET, kind: SCM_RIGHTS },
        fd: fd.unwrap_or(-1),
        pad: 0,
    };
    let msg = Msghdr {
        name: ptr::null_mut(),
        namelen: 0,
        iov: &iov,
        iovlen: 1,
        control: if fd.is_some() { ptr::addr_of_mut!(control).cast() } else { ptr::null_mut() },
        controllen: if fd.is_some() { space(size_of::<i32>()) } else { 0 },
        flags: 0,
    };
    loop {
        // SAFETY: `msg` and everything it points to live until the call returns.
        let n = unsafe { sendmsg(socket, &msg, MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(not(all(
    any(target_os = "linux", target_os = "android"),
    target_pointer_width = "64",
    target_endian = "little"
)))]
pub(crate) fn send_with_fd(_socket: RawFd, _bytes: &[u8], _fd: Option<RawFd>) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "passing a vCPU fd is implemented for 64-bit Linux"))
}

#[cfg(all(test, target_os = "linux", target_pointer_width = "64", target_endian = "little"))]
mod tests {
    use super::sys::*;
    use std::mem::{align_of, size_of, MaybeUninit};
    use std::ptr::addr_of;

    fn offset<T, F>(field: impl Fn(*const T) -> *const F) -> usize {
        let v = MaybeUninit::<T>::uninit();
        let base = v.as_ptr();
        field(base) as usize - base as usize
    }

    #[test]
    fn msghdr_and_iovec_have_the_kernels_64_bit_layout() {
        assert_eq!(size_of::<Iovec>(), 16);
        assert_eq!(size_of::<Msghdr>(), 56);
        // SAFETY (all): addr_of on a field of an uninitialised value only computes its address.
        assert_eq!(offset(|m: *const Msghdr| unsafe { addr_of!((*m).namelen) }), 8);
        assert_eq!(offset(|m: *const Msghdr| unsafe { addr_of!((*m).iov) }), 16);
        assert_eq!(offset(|m: *const Msghdr| unsafe { addr_of!((*m).iovlen) }), 24);
        assert_eq!(offset(|m: *const Msghdr| unsafe { addr_of!((*m).control) }), 32);
        assert_eq!(offset(|m: *const Msghdr| unsafe { addr_of!((*m).controllen) }), 40);
        assert_eq!(offset(|m: *const Msghdr| unsafe { addr_of!((*m).flags) }), 48);
    }

    #[test]
    fn one_fd_fills_cmsg_space_of_an_int_with_the_fd_at_cmsg_data() {
        // The kernel's numbers for one int on 64-bit: a 16-byte header, CMSG_LEN 20, CMSG_SPACE 24.
        assert_eq!(size_of::<Cmsghdr>(), 16);
        assert_eq!(len(size_of::<i32>()), 20);
        assert_eq!(space(size_of::<i32>()), 24);
        assert_eq!(size_of::<OneFd>(), space(size_of::<i32>()));
        assert_eq!(align_of::<OneFd>(), align_of::<usize>());
        assert_eq!(offset(|c: *const OneFd| unsafe { addr_of!((*c).fd) }), align(size_of::<Cmsghdr>()));
        assert_eq!((align(0), align(1), align(8), align(9)), (0, 8, 8, 16));
    }

    extern "C" {
        fn socketpair(domain: i32, kind: i32, protocol: i32, sv: *mut i32) -> i32;
        fn recvmsg(fd: i32, msg: *mut Msghdr, flags: i32) -> isize;
    }

    #[test]
    fn a_message_sent_with_an_fd_arrives_whole_with_a_copy_of_the_fd() {
        use std::io::{Read, Write};
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        use std::os::unix::net::UnixStream;

        let mut sv = [-1i32; 2];
        // SAFETY: socketpair writes two fds into `sv`; they are owned below.
        assert_eq!(unsafe { socketpair(1, 5 | 0o2_000_000, 0, sv.as_mut_ptr()) }, 0);
        // SAFETY: each fd was just opened and is owned once.
        let (a, b) = unsafe { (OwnedFd::from_raw_fd(sv[0]), OwnedFd::from_raw_fd(sv[1])) };
        let (mut mine, theirs) = UnixStream::pair().unwrap();
        super::send_with_fd(a.as_raw_fd(), b"attach!", Some(theirs.as_raw_fd())).unwrap();
        drop(theirs); // the copy in flight keeps the other end open

        let mut data = [0u8; 32];
        let iov = Iovec { base: data.as_mut_ptr().cast(), len: data.len() };
        let mut control = OneFd { hdr: Cmsghdr { len: 0, level: 0, kind: 0 }, fd: -1, pad: 0 };
        let mut msg = Msghdr {
            name: std::ptr::null_mut(),
            namelen: 0,
            iov: &iov,
            iovlen: 1,
            control: std::ptr::addr_of_mut!(control).cast(),
            controllen: size_of::<OneFd>(),
            flags: 0,
        };
        // SAFETY: `msg` points at live buffers of the sizes it states.
        let n = unsafe { recvmsg(b.as_raw_fd(), &mut msg, 0) };
        assert_eq!(&data[..n as usize], b"attach!");
        assert_eq!((control.hdr.level, control.hdr.kind, control.hdr.len), (SOL_SOCKET, SCM_RIGHTS, 20));
        assert_eq!(msg.flags, 0, "nothing truncated");
        // SAFETY: the kernel installed this fd for us.
        let mut got = UnixStream::from(unsafe { OwnedFd::from_raw_fd(control.fd) });
        got.write_all(b"x").unwrap();
        let mut one = [0u8; 1];
        mine.read_exact(&mut one).unwrap();
        assert_eq!(&one, b"x");

        // Without an fd: no control message at all.
        super::send_with_fd(a.as_raw_fd(), b"detach", None).unwrap();
        msg.controllen = size_of::<OneFd>();
        // SAFETY: as above.
        let n = unsafe { recvmsg(b.as_raw_fd(), &mut msg, 0) };
        assert_eq!((&data[..n as usize], msg.controllen), (&b"detach"[..], 0));
    }
}
