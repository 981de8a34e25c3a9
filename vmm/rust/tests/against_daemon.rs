//! `cargo test` against a real seawall daemon. `npm test` (test/protocol/rust-crate.test.ts in the
//! seawall repository) starts one on a private socket and runs these with SEAWALL_SOCKET set;
//! without it they print why and pass, so `cargo test` alone still runs the unit tests.

use std::os::unix::net::UnixListener;
use std::time::Duration;

use seawall_plugin::{cap, wire, Action, Config, Error, Exit, Fallback, Hello, Plugin, Source};

fn socket() -> Option<String> {
    let s = std::env::var("SEAWALL_SOCKET").ok();
    if s.is_none() {
        eprintln!("SEAWALL_SOCKET is not set: no daemon to test against (npm test sets it)");
    }
    s
}

fn hello(vm: &str) -> Hello {
    Hello {
        caps: cap::SEA_TO_USER | cap::INJECT_EXT_DABT | cap::RAS,
        vmm_pid: std::process::id(),
        vcpu_count: 2,
        ext_abt_esr_cap: 0,
        vm_id: vm.into(),
        labels: vec![("tenant".into(), "rust-crate".into())],
    }
}

/// The `sea_to_user` selftest's exit: a data abort (EC 0x24) at GVA 0x81234BAD, GPA valid.
const SEA: Exit = Exit::Sea { vcpu: 0, kvm_flags: 1, esr: 0x9200_0010, gva: 0x8123_4bad, gpa: 0x4_5678_b000 };

fn config(minor: u16) -> Config {
    Config {
        deadline: Duration::from_secs(10),
        hello_timeout: Duration::from_secs(10),
        minor,
        ..Config::default()
    }
}

#[test]
fn a_sea_exit_gets_the_daemons_injection_in_1_1_and_in_1_0() {
    let Some(path) = socket() else { return };
    for minor in [1u16, 0] {
        let mut plugin = Plugin::new(config(minor));
        let welcome = plugin.connect(&path, &hello(&format!("rust-sea-{minor}"))).expect("WELCOME");
        assert_eq!((welcome.version, welcome.minor), (1, minor));
        assert_eq!(welcome.max_body != 0, minor >= 1, "max_body is a 1.1 field");
        let v = plugin.handle_exit(&SEA);
        assert_eq!(v.source, Source::Daemon);
        assert_eq!(v.action, Action::Inject);
        let mut merged = [0u8; 64];
        merged[2] = 1;
        assert_eq!(v.vcpu_events, merged, "the built-in policy's merged-ABI data abort");
        plugin.send_applied(v.seq, 0).expect("APPLIED");
        plugin.close(wire::goodbye::VM_EXITING);
        assert!(!plugin.connected());
    }
}

#[test]
fn every_exit_kind_is_answered() {
    let Some(path) = socket() else { return };
    let mut plugin = Plugin::new(config(1));
    let mut h = hello("rust-kinds");
    h.caps |= cap::NISV_TO_USER | cap::EMULATE_ABORT;
    plugin.connect(&path, &h).expect("WELCOME");
    let exits = [
        SEA,
        Exit::Nisv { vcpu: 1, esr_iss: 0x7, fault_ipa: 0x800_0000 },
        Exit::Mmio { vcpu: 1, phys_addr: 0x800_0000, data: [0; 8], len: 4, is_write: false },
        Exit::Sigbus { vcpu: None, si_code: 5, addr_lsb: 12, gpa: Some(0x9000) },
    ];
    for exit in &exits {
        let v = plugin.handle_exit(exit);
        assert_eq!(v.source, Source::Daemon, "{exit:?}");
    }
    // The built-in policy records an action-optional SIGBUS only.
    plugin.close(wire::goodbye::NORMAL);
}

#[test]
fn a_second_session_for_a_held_vm_id_is_refused_without_naming_the_holder() {
    let Some(path) = socket() else { return };
    let mut first = Plugin::new(config(1));
    first.connect(&path, &hello("rust-held")).expect("WELCOME");
    let mut second = Plugin::new(config(1));
    match second.connect(&path, &hello("rust-held")) {
        Err(Error::Refused { code: 8, text, .. }) => assert!(!text.contains("pid"), "{text}"),
        other => panic!("expected REJECT VM_IN_USE, got {other:?}"),
    }
    // Without a connection every exit still gets an answer at once: the fallback.
    let v = second.handle_exit(&SEA);
    assert_eq!((v.source, v.action), (Source::Fallback, Action::Inject));
    assert_eq!(second.kept(), 1);
    first.close(wire::goodbye::NORMAL);
    // Once the holder is gone the kept event is replayed, and forgotten when the daemon echoes.
    second.connect(&path, &hello("rust-held")).expect("WELCOME after the holder left");
    assert_eq!(second.stats().replayed, 1);
    for _ in 0..100 {
        if second.kept() == 0 {
            break;
        }
        second.poll(Duration::from_millis(100)).expect("poll");
    }
    assert_eq!(second.kept(), 0, "forgotten once the HEARTBEAT echo acknowledged the replay");
    second.close(wire::goodbye::NORMAL);
}

#[test]
fn no_daemon_means_the_configured_fallback_at_once() {
    let dir = std::env::temp_dir().join(format!("seawall-rust-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("nobody.sock");
    let mut plugin = Plugin::new(Config { fallback: Fallback::Kill, ..config(1) });
    assert!(matches!(plugin.connect(&path, &hello("rust-none")), Err(Error::Io(_))));
    let v = plugin.handle_exit(&SEA);
    assert_eq!((v.source, v.action), (Source::Fallback, Action::Kill));
    // A listener that never answers: the handshake times out instead of stalling.
    let listener = UnixListener::bind(&path).unwrap();
    let mut slow = Plugin::new(Config { hello_timeout: Duration::from_millis(200), ..config(1) });
    assert!(matches!(slow.connect(&path, &hello("rust-none")), Err(Error::Timeout)));
    drop(listener);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_listener_with_a_full_backlog_fails_the_connect_at_once() {
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::sync::mpsc;
    use std::time::Instant;
    extern "C" {
        fn listen(fd: std::os::raw::c_int, backlog: std::os::raw::c_int) -> std::os::raw::c_int;
    }
    // A socket-activated listener while the daemon is down: nobody accepts, and once its backlog
    // is full a blocking connect(2) waits for as long as that lasts.
    let dir = std::env::temp_dir().join(format!("seawall-rust-backlog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("full.sock");
    let listener = UnixListener::bind(&path).unwrap();
    // SAFETY: listen(2) again on a listening socket only sets its backlog.
    assert_eq!(unsafe { listen(listener.as_raw_fd(), 0) }, 0);
    let _pending = UnixStream::connect(&path).expect("the one connection a backlog of 0 admits");
    let hello_timeout = Duration::from_millis(300);
    let (tx, rx) = mpsc::channel();
    let p = path.clone();
    std::thread::spawn(move || {
        let mut plugin = Plugin::new(Config { hello_timeout, ..config(1) });
        let started = Instant::now();
        let r = plugin.connect(&p, &hello("rust-backlog"));
        let _ = tx.send((r.map(|_| ()), started.elapsed()));
    });
    // A deadline of our own: a connect that blocks fails the test instead of hanging it.
    let (r, took) = rx.recv_timeout(hello_timeout + Duration::from_secs(5)).expect("connect returned");
    match r {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}"),
        other => panic!("expected EAGAIN from the full backlog, got {other:?}"),
    }
    assert!(took <= hello_timeout, "connect took {took:?}");
    drop(listener);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The daemon that `npm test` starts for these tests has the attach socket at its default place
/// beside the plugin socket, and accepts only KVM vCPU fds: anything else is refused with BAD_FD.
#[test]
fn an_fd_that_is_no_vcpu_is_refused_in_every_session_and_exits_still_get_the_daemons_verdicts() {
    use seawall_plugin::{attach_wire, AttachReply};
    use std::os::fd::AsRawFd;
    let Some(path) = socket() else { return };
    let (not_a_vcpu, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut plugin = Plugin::new(config(1));
    assert!(matches!(plugin.attach_vcpu(2, not_a_vcpu.as_raw_fd()), Ok(AttachReply::NotSent)));
    plugin.connect(&path, &hello("rust-attach-bad-fd")).expect("WELCOME");
    assert_eq!(plugin.attach_socket(), Some(attach_wire::default_socket(path.as_ref()).as_path()));
    // Registered before the first HELLO, vCPU 2 is past this one's vcpu_count (2): not sent.
    assert_eq!((plugin.stats().attach_failed, plugin.stats().attach_refused), (1, 0));
    assert!(matches!(plugin.attach_vcpu(2, 0), Err(Error::InvalidVcpu(2))));
    plugin.detach_vcpu(2);
    let r = plugin.attach_vcpu(0, not_a_vcpu.as_raw_fd()).expect("a vCPU of this VM");
    assert_eq!(r, AttachReply::Refused(attach_wire::status::BAD_FD));
    assert_eq!(plugin.handle_exit(&SEA).source, Source::Daemon);
    // close forgets the registered vCPUs: the next session sends nothing until one is registered.
    plugin.close(wire::goodbye::NORMAL);
    plugin.connect(&path, &hello("rust-attach-bad-fd")).expect("WELCOME again");
    assert_eq!(plugin.stats().attach_refused, 1);
    let r = plugin.attach_vcpu(0, not_a_vcpu.as_raw_fd()).expect("a vCPU of this VM");
    assert_eq!(r, AttachReply::Refused(attach_wire::status::BAD_FD));
    let s = plugin.stats();
    assert_eq!((s.attached, s.attach_refused, s.attach_failed), (0, 2, 1));
    assert_eq!(plugin.attached_vcpus(), 0);
    assert_eq!(plugin.handle_exit(&SEA).source, Source::Daemon);
    plugin.close(wire::goodbye::NORMAL);
}

#[test]
fn an_attach_socket_that_is_not_there_is_counted_and_exits_still_get_the_daemons_verdicts() {
    use seawall_plugin::AttachReply;
    use std::os::fd::AsRawFd;
    let Some(path) = socket() else { return };
    let (fd, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut plugin = Plugin::new(config(1));
    plugin.set_attach_socket(std::env::temp_dir().join(format!("seawall-none-{}.sock", std::process::id())));
    plugin.connect(&path, &hello("rust-attach-missing")).expect("WELCOME");
    let r = plugin.attach_vcpu(1, fd.as_raw_fd()).expect("a vCPU of this VM");
    assert_eq!(r, AttachReply::Failed(std::io::ErrorKind::NotFound));
    assert_eq!(plugin.stats().attach_failed, 1);
    let v = plugin.handle_exit(&SEA);
    assert_eq!((v.source, v.action), (Source::Daemon, Action::Inject));
    plugin.close(wire::goodbye::NORMAL);
}
