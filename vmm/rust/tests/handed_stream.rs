//! A stream the VMM hands to `connect_stream` in non-blocking mode, as one taken from an event
//! loop can be: the plugin makes it blocking, so the socket timeouts its waits rely on apply. The
//! daemon's end is the other half of a socket pair, played by a thread: no daemon is needed.
//!
//! The socket option and fcntl numbers below are Linux's on x86-64 and arm64.
#![cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::raw::{c_int, c_void};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use seawall_plugin::{wire, Config, Exit, Hello, Plugin, Source};

extern "C" {
    fn fcntl(fd: c_int, cmd: c_int, ...) -> c_int;
    fn setsockopt(fd: c_int, level: c_int, name: c_int, value: *const c_void, len: u32) -> c_int;
    fn ioctl(fd: c_int, request: u64, ...) -> c_int;
}

const F_GETFL: c_int = 3;
const O_NONBLOCK: c_int = 0o4000;
const SOL_SOCKET: c_int = 1;
const SO_SNDBUF: c_int = 7;
const FIONREAD: u64 = 0x541b;

/// Patient waits: a loaded machine must not turn an answer into a timeout.
fn config() -> Config {
    Config { deadline: Duration::from_secs(30), hello_timeout: Duration::from_secs(30), ..Config::default() }
}

fn hello(labels: Vec<(String, String)>) -> Hello {
    Hello {
        caps: 3,
        vmm_pid: std::process::id(),
        vcpu_count: 1,
        vm_id: "handed".into(),
        labels,
        ..Hello::default()
    }
}

fn nonblocking(s: &UnixStream) -> bool {
    // SAFETY: F_GETFL on an fd `s` holds open.
    let flags = unsafe { fcntl(s.as_raw_fd(), F_GETFL) };
    assert!(flags >= 0);
    flags & O_NONBLOCK != 0
}

/// A 1.1 WELCOME frame.
fn welcome() -> Vec<u8> {
    let mut f = vec![24, 0, 0, 0, wire::MSG_WELCOME as u8, 0, 0, 0, 1, 0, 1, 0, 16, 0, 0, 0];
    f.extend_from_slice(&9u64.to_le_bytes());
    f.extend_from_slice(&5000u32.to_le_bytes());
    f.extend_from_slice(&16384u32.to_le_bytes());
    f
}

/// A VERDICT frame: RESUME for `seq`.
fn verdict(seq: u32) -> Vec<u8> {
    let mut f = vec![88, 0, 0, 0, wire::MSG_VERDICT as u8, 0, 0, 0];
    f.extend_from_slice(&seq.to_le_bytes());
    f.resize(8 + 88, 0);
    f
}

/// One whole frame from the daemon's end: its type and body.
fn read_frame(daemon: &mut UnixStream) -> (u16, Vec<u8>) {
    let mut header = [0u8; 8];
    daemon.read_exact(&mut header).unwrap();
    let mut body = vec![0u8; wire::get_u32(&header, 0) as usize];
    daemon.read_exact(&mut body).unwrap();
    (wire::get_u16(&header, 4), body)
}

#[test]
fn a_non_blocking_stream_is_made_blocking_and_its_session_gets_the_daemons_verdict() {
    let (ours, mut daemon) = UnixStream::pair().unwrap();
    let probe = ours.try_clone().unwrap(); // shares the file status flags with the plugin's end
    ours.set_nonblocking(true).unwrap();
    daemon.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let peer = std::thread::spawn(move || {
        assert_eq!(read_frame(&mut daemon).0, wire::MSG_HELLO);
        daemon.write_all(&welcome()).unwrap();
        let (kind, body) = read_frame(&mut daemon);
        assert_eq!(kind, wire::MSG_EVENT_SEA);
        // Written only once the event is read: the plugin is already waiting for it.
        daemon.write_all(&verdict(wire::get_u32(&body, 0))).unwrap();
        daemon
    });
    let mut plugin = Plugin::new(config());
    plugin.connect_stream(ours, &hello(Vec::new())).expect("WELCOME");
    assert!(!nonblocking(&probe), "the plugin's stream is blocking, its timeouts in force");
    let v = plugin.handle_exit(&Exit::Sea { vcpu: 0, kvm_flags: 1, esr: 0x9200_0010, gva: 0, gpa: 0 });
    assert_eq!(v.source, Source::Daemon);
    let _daemon = peer.join().unwrap();
}

/// The state letter of this process's thread `tid` ('R', 'S', …).
fn thread_state(tid: &str) -> char {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
    stat[stat.rfind(')').unwrap() + 2..].chars().next().unwrap()
}

/// Bytes waiting to be read on `s`.
fn pending(s: &UnixStream) -> c_int {
    let mut n: c_int = 0;
    // SAFETY: FIONREAD writes one int into `n`.
    assert_eq!(unsafe { ioctl(s.as_raw_fd(), FIONREAD, &mut n as *mut c_int) }, 0);
    n
}

#[test]
fn a_hello_larger_than_the_send_buffer_of_a_non_blocking_stream_waits_for_the_daemon_to_read_it() {
    let (ours, mut daemon) = UnixStream::pair().unwrap();
    // The kernel raises it to its minimum, a few KiB.
    let smallest: c_int = 1;
    // SAFETY: SO_SNDBUF reads one int from `smallest`.
    let r = unsafe {
        setsockopt(ours.as_raw_fd(), SOL_SOCKET, SO_SNDBUF, &smallest as *const c_int as *const c_void, 4)
    };
    assert_eq!(r, 0);
    ours.set_nonblocking(true).unwrap();
    // The largest HELLO there is: 32 labels of the longest key and value, about 10 KiB.
    let labels = (0..32).map(|i| (format!("{i:02}{}", "k".repeat(61)), "v".repeat(255))).collect();
    let hello = hello(labels);
    let hello_len = wire::encode_hello(&hello, wire::PROTOCOL_MINOR).unwrap().len();

    // The daemon reads nothing until the plugin has filled its send buffer and sleeps in the write
    // (it waits for the daemon, as a blocking stream does), or has returned (the write failed at
    // once, as a non-blocking one does). Then it takes the HELLO and answers.
    let me = std::fs::read_link("/proc/thread-self").unwrap();
    let tid = me.file_name().unwrap().to_string_lossy().into_owned();
    let returned = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&returned);
    let peer = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(30);
        // Checked first: once returned, the thread sleeps again, in the join below.
        while !seen.load(Ordering::SeqCst) {
            if pending(&daemon) > 0 && thread_state(&tid) == 'S' {
                break;
            }
            assert!(Instant::now() < end, "the plugin neither waited in its write nor returned");
            std::thread::sleep(Duration::from_millis(1));
        }
        if seen.load(Ordering::SeqCst) {
            return None;
        }
        daemon.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let (kind, body) = read_frame(&mut daemon);
        daemon.write_all(&welcome()).unwrap();
        Some((kind, 8 + body.len(), daemon))
    });
    let mut plugin = Plugin::new(config());
    let r = plugin.connect_stream(ours, &hello);
    returned.store(true, Ordering::SeqCst);
    let got = peer.join().unwrap();
    assert!(r.is_ok(), "the HELLO went out whole: {r:?}");
    let (kind, len, _daemon) = got.expect("the daemon read the HELLO");
    assert_eq!((kind, len), (wire::MSG_HELLO, hello_len));
}
