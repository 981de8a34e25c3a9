//! Unit tests of attach.rs that need no daemon: the daemon's plugin-socket end is the other half
//! of a socket pair, and the attach socket is one that is not there.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::super::tests::welcome;
use super::Plugin;
use crate::plugin::Stats;
use crate::types::{Config, Error, Hello};

fn hello() -> Hello {
    Hello { caps: 3, vmm_pid: std::process::id(), vcpu_count: 1, vm_id: "at".into(), ..Hello::default() }
}

/// A plugin in a session with a fake daemon: WELCOME is waiting on the daemon's end.
fn in_session(plugin: &mut Plugin, hello: &Hello) -> UnixStream {
    let (mine, mut daemon) = UnixStream::pair().unwrap();
    daemon.write_all(&welcome()).unwrap();
    plugin.connect_stream(mine, hello).expect("WELCOME");
    daemon
}

#[test]
fn the_attach_socket_is_derived_from_connects_path_named_by_the_vmm_and_none_after_connect_stream() {
    let mut plugin = Plugin::new(Config { hello_timeout: Duration::from_millis(200), ..Config::default() });
    assert_eq!(plugin.attach_socket(), None);
    let _ = plugin.connect("/nonexistent/seawall/vm1.sock", &hello());
    assert_eq!(plugin.attach_socket(), Some(Path::new("/nonexistent/seawall/vm1-attach.sock")));
    let _daemon = in_session(&mut plugin, &hello());
    assert_eq!(plugin.attach_socket(), None, "a stream the VMM connected names no socket");
    plugin.set_attach_socket("/run/elsewhere/attach.sock");
    let _ = plugin.connect("/nonexistent/seawall/plugin.sock", &hello());
    assert_eq!(plugin.attach_socket(), Some(Path::new("/run/elsewhere/attach.sock")), "named wins");
}

#[test]
fn attach_vcpu_checks_the_index_waits_for_a_session_and_counts_a_missing_socket() {
    use crate::types::AttachReply;
    use std::os::fd::AsRawFd;
    let (vcpu, _other) = UnixStream::pair().unwrap();
    let fd = vcpu.as_raw_fd();
    let mut plugin = Plugin::new(Config::default());
    assert!(matches!(plugin.attach_vcpu(4096, fd), Err(Error::InvalidVcpu(4096))), "the protocol's bound");
    assert_eq!(plugin.attach_vcpu(0, fd).unwrap(), AttachReply::NotSent);
    assert_eq!(plugin.stats(), Stats::default(), "nothing tried before a session");

    let missing = std::env::temp_dir().join(format!("seawall-missing-{}.sock", std::process::id()));
    plugin.set_attach_socket(&missing);
    let _daemon = in_session(&mut plugin, &hello());
    assert_eq!(plugin.stats().attach_failed, 1, "WELCOME tried the registered vCPU");
    assert!(plugin.connected(), "and the session goes on");
    assert!(matches!(plugin.attach_vcpu(1, fd), Err(Error::InvalidVcpu(1))), "this HELLO has one vCPU");
    assert_eq!(plugin.attach_vcpu(0, fd).unwrap(), AttachReply::Failed(std::io::ErrorKind::NotFound));
    assert_eq!((plugin.stats().attach_failed, plugin.attached_vcpus()), (2, 0));
    assert_eq!(plugin.detach_vcpu(0), AttachReply::NotSent, "never attached: nothing to tell");
    assert_eq!(plugin.detach_vcpu(0), AttachReply::NotSent);
}

#[test]
fn close_forgets_the_registered_vcpus_so_no_later_session_sends_their_fds() {
    use std::os::fd::AsRawFd;
    let (vcpu, _other) = UnixStream::pair().unwrap();
    let mut plugin = Plugin::new(Config::default());
    let missing = std::env::temp_dir().join(format!("seawall-forgotten-{}.sock", std::process::id()));
    plugin.set_attach_socket(&missing);
    plugin.attach_vcpu(0, vcpu.as_raw_fd()).unwrap();
    let _first = in_session(&mut plugin, &hello());
    assert_eq!(plugin.stats().attach_failed, 1, "the registered vCPU was tried at WELCOME");
    plugin.close(crate::wire::goodbye::VM_EXITING);
    let _second = in_session(&mut plugin, &hello());
    assert_eq!(plugin.stats().attach_failed, 1, "nothing registered is left to try");
}

/// A SEQPACKET socket pair: the plugin's attach connection and the daemon's end of it.
#[cfg(all(target_os = "linux", target_pointer_width = "64", target_endian = "little"))]
fn seqpacket_pair() -> (std::os::unix::net::UnixDatagram, std::os::unix::net::UnixDatagram) {
    use std::os::fd::FromRawFd;
    extern "C" {
        fn socketpair(domain: i32, kind: i32, protocol: i32, sv: *mut i32) -> i32;
    }
    let mut sv = [-1i32; 2];
    // SAFETY: socketpair writes two fds into `sv`; each is owned once below.
    assert_eq!(unsafe { socketpair(1, 5 | 0o2_000_000, 0, sv.as_mut_ptr()) }, 0);
    // SAFETY: both fds were just opened and are owned by nothing else.
    unsafe {
        (
            std::os::unix::net::UnixDatagram::from_raw_fd(sv[0]),
            std::os::unix::net::UnixDatagram::from_raw_fd(sv[1]),
        )
    }
}

#[cfg(all(target_os = "linux", target_pointer_width = "64", target_endian = "little"))]
#[test]
fn vcpus_a_closed_attach_connection_released_are_lost_until_reattach_which_backs_off_when_it_fails() {
    use super::Slot;
    use std::io::ErrorKind;
    use std::os::fd::AsRawFd;
    let (vcpu, _other) = UnixStream::pair().unwrap();
    let mut plugin = Plugin::new(Config::default());
    assert_eq!(plugin.reattach(), Ok(0), "outside a session nothing is lost");
    let hello2 = Hello { vcpu_count: 2, ..hello() };
    let _daemon = in_session(&mut plugin, &hello2);
    // vCPU 0 attached over an open connection, as an OK reply leaves it.
    let (mine, theirs) = seqpacket_pair();
    plugin.attach.conn = Some(mine);
    plugin.attach.vcpus.insert(0, (vcpu.as_raw_fd(), Slot::Attached));
    assert!(!plugin.reattach_due(), "open and quiet: nothing to do");
    assert_eq!((plugin.attached_vcpus(), plugin.lost_vcpus()), (1, 0));

    // The daemon closes it: due at once, and reattach finds vCPU 0 lost. The attach socket is gone
    // too, so the attempt fails: counted, still lost, and the next one waits twice as long.
    drop(theirs);
    assert!(plugin.reattach_due());
    let missing = std::env::temp_dir().join(format!("seawall-lost-{}.sock", std::process::id()));
    plugin.set_attach_socket(&missing);
    assert_eq!(plugin.reattach(), Err(ErrorKind::NotFound));
    assert_eq!((plugin.attached_vcpus(), plugin.lost_vcpus(), plugin.stats().attach_failed), (0, 1, 1));
    assert_eq!(plugin.attach.backoff, Plugin::RECONNECT_MIN * 2);
    assert!(plugin.attach.reattach_at.is_some());
    assert_eq!(plugin.reattach(), Err(ErrorKind::NotFound), "the VMM may call it before it is due");
    assert_eq!((plugin.lost_vcpus(), plugin.stats().attach_failed), (1, 2));
    assert_eq!(plugin.attach.backoff, Plugin::RECONNECT_MIN * 4);

    // Detached, it is no longer lost; the session's end forgets the rest.
    plugin.attach.vcpus.insert(1, (vcpu.as_raw_fd(), Slot::Lost));
    assert_eq!(plugin.detach_vcpu(0), crate::types::AttachReply::NotSent);
    assert_eq!(plugin.lost_vcpus(), 1);
    plugin.close(crate::wire::goodbye::VM_EXITING);
    assert_eq!((plugin.lost_vcpus(), plugin.reattach_due()), (0, false));
}
