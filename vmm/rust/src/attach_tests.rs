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
