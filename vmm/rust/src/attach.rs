//! vCPU attachment (docs/protocol.md §9a, docs/actions.md "vCPU attachment"): the VMM registers its
//! vCPU fds, and for each session the plugin passes them to the daemon over the attach socket
//! (`SOCK_SEQPACKET`, the fd as `SCM_RIGHTS`), so that the daemon reads every exit from the
//! kernel's own `kvm_run` page instead of trusting the event's copy. Attachments are bound to a
//! session: after every WELCOME the registered vCPUs are attached again on a fresh connection,
//! and the connection is closed when the session ends. Optional: a missing attach socket, a
//! refusal or a timeout is counted and changes nothing else.
//!
//! The plugin neither duplicates nor closes the VMM's fds: a copy held here would keep the VM's
//! kernel objects alive after the VMM closed its own. The VMM keeps each fd open until
//! `detach_vcpu` or until it stops using the plugin.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{remaining, Plugin};
use crate::attach_wire::{self as aw, status};
use crate::connect;
use crate::scm;
use crate::types::{AttachReply, Error};

/// The protocol's bound on `vcpu_count` (§4.1): the check before any HELLO.
const VCPUS_MAX: u32 = 4096;

/// Registered vCPUs and the current session's attach connection.
#[derive(Debug, Default)]
pub(super) struct Attachments {
    /// `set_attach_socket`'s path: wins over the derived one.
    explicit: Option<PathBuf>,
    /// Derived from the path `connect` was given; none after `connect_stream`.
    derived: Option<PathBuf>,
    /// vCPU index → the VMM's fd, and whether the daemon attached it on the current connection.
    vcpus: BTreeMap<u32, (RawFd, bool)>,
    conn: Option<UnixDatagram>,
}

impl Attachments {
    /// `connect` to `path` (Some) or `connect_stream` (None): where the default attach socket is.
    pub(super) fn plugin_socket(&mut self, path: Option<&Path>) {
        self.derived = path.map(aw::default_socket);
    }

    /// `Plugin::close`: the VMM may close its vCPU fds after it, and a number it closed may soon
    /// name another file, so none is kept to be attached in a later session.
    pub(super) fn forget_vcpus(&mut self) {
        self.close();
        self.vcpus.clear();
    }

    /// Closes the connection; the daemon releases everything attached through it.
    fn close(&mut self) {
        self.conn = None;
        for v in self.vcpus.values_mut() {
            v.1 = false;
        }
    }
}

impl Plugin {
    /// Uses `path` as the attach socket instead of the one derived from `connect`'s path
    /// (`attach_wire::default_socket`). Needed to attach after `connect_stream`, which has none.
    /// Takes effect at the next connection to it (the next session).
    pub fn set_attach_socket(&mut self, path: impl Into<PathBuf>) {
        self.attach.explicit = Some(path.into());
    }

    /// The attach socket this plugin uses, if any.
    pub fn attach_socket(&self) -> Option<&Path> {
        self.attach.explicit.as_deref().or(self.attach.derived.as_deref())
    }

    /// Registers `fd` as vCPU `vcpu`'s, to be attached in this session and in every later one.
    /// Connected, it is attached at once and the daemon's reply returned (waiting for it at most
    /// `Config::hello_timeout`); otherwise it is attached after the next WELCOME (`NotSent`). A
    /// vCPU registered again replaces its fd. `fd` stays the caller's: it must stay open until
    /// `detach_vcpu`, or `close`, which forgets every registered vCPU. An index past the HELLO's
    /// `vcpu_count` is an error, and nothing is registered or sent.
    pub fn attach_vcpu(&mut self, vcpu: u32, fd: RawFd) -> Result<AttachReply, Error> {
        let bound = if self.vcpu_count > 0 { self.vcpu_count } else { VCPUS_MAX };
        if vcpu >= bound {
            return Err(Error::InvalidVcpu(vcpu));
        }
        self.attach.vcpus.insert(vcpu, (fd, false));
        if self.stream.is_none() {
            return Ok(AttachReply::NotSent);
        }
        Ok(self.attach_request(aw::OP_ATTACH, vcpu, Some(fd), Instant::now() + self.config.hello_timeout))
    }

    /// Forgets vCPU `vcpu`; if the daemon has it attached, asks it to let go (DETACH) and returns
    /// its reply. After this the caller may close the fd.
    pub fn detach_vcpu(&mut self, vcpu: u32) -> AttachReply {
        match self.attach.vcpus.remove(&vcpu) {
            Some((_, true)) if self.stream.is_some() => {
                self.attach_request(aw::OP_DETACH, vcpu, None, Instant::now() + self.config.hello_timeout)
            }
            _ => AttachReply::NotSent,
        }
    }

    /// vCPUs the daemon has attached in the current session.
    pub fn attached_vcpus(&self) -> usize {
        self.attach.vcpus.values().filter(|v| v.1).count()
    }

    /// After WELCOME: attaches every registered vCPU on a fresh connection for the new session,
    /// all by `deadline`. One past this HELLO's `vcpu_count` is not sent (the daemon would refuse
    /// it) and counts as failed.
    pub(super) fn reattach(&mut self, deadline: Instant) {
        self.attach.close();
        let vcpus: Vec<(u32, RawFd)> = self.attach.vcpus.iter().map(|(i, v)| (*i, v.0)).collect();
        for (vcpu, fd) in vcpus {
            if vcpu >= self.vcpu_count {
                self.stats.attach_failed += 1;
                continue;
            }
            self.attach_request(aw::OP_ATTACH, vcpu, Some(fd), deadline);
        }
    }

    /// The session ended: its attach connection goes with it.
    pub(super) fn end_attach_session(&mut self) {
        self.attach.close();
    }

    fn attach_request(&mut self, op: u16, vcpu: u32, fd: Option<RawFd>, deadline: Instant) -> AttachReply {
        let reply = self.attach_exchange(op, vcpu, fd, deadline);
        if let AttachReply::Refused(s) = reply {
            if status::closes(s) {
                self.attach.close();
            }
        }
        if op == aw::OP_ATTACH {
            match reply {
                AttachReply::Ok => self.stats.attached += 1,
                AttachReply::Refused(_) => self.stats.attach_refused += 1,
                AttachReply::Failed(_) => self.stats.attach_failed += 1,
                AttachReply::NotSent => {}
            }
            if let Some(v) = self.attach.vcpus.get_mut(&vcpu) {
                v.1 = reply == AttachReply::Ok;
            }
        }
        reply
    }

    fn attach_exchange(&mut self, op: u16, vcpu: u32, fd: Option<RawFd>, deadline: Instant) -> AttachReply {
        let Some(path) = self.attach_socket().map(Path::to_path_buf) else {
            return AttachReply::NotSent;
        };
        if remaining(deadline).is_zero() {
            return AttachReply::Failed(ErrorKind::TimedOut);
        }
        let record = aw::encode_request(op, self.welcome.session_id, vcpu);
        let mut fresh = false;
        loop {
            if self.attach.conn.is_none() {
                match connect::connect_seqpacket(&path) {
                    Ok(c) => self.attach.conn = Some(c),
                    Err(e) => return AttachReply::Failed(e.kind()),
                }
                fresh = true;
            }
            let conn = self.attach.conn.as_ref().expect("opened above");
            match scm::send_with_fd(conn.as_raw_fd(), &record, fd) {
                Ok(()) => break,
                Err(e) => {
                    self.attach.close();
                    // The daemon closes a connection that has nothing attached after a while
                    // (`attach.idleMs`): an ATTACH goes once more on a fresh one.
                    let closed = matches!(
                        e.kind(),
                        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::NotConnected
                    );
                    if fresh || !closed || op != aw::OP_ATTACH {
                        return AttachReply::Failed(e.kind());
                    }
                }
            }
        }
        match self.attach_reply(op, vcpu, deadline) {
            Ok(s) if s == status::OK => AttachReply::Ok,
            Ok(s) => AttachReply::Refused(s),
            Err(kind) => {
                // A reply still on its way would be taken for the next request's.
                self.attach.close();
                AttachReply::Failed(kind)
            }
        }
    }

    /// The status of the reply to `op` for `vcpu`, read by `deadline`.
    fn attach_reply(&mut self, op: u16, vcpu: u32, deadline: Instant) -> Result<u32, ErrorKind> {
        let conn = self.attach.conn.as_ref().ok_or(ErrorKind::NotConnected)?;
        // One byte more than a reply: a longer message is not one.
        let mut buf = [0u8; aw::REPLY_SIZE + 1];
        loop {
            let left = remaining(deadline);
            if left.is_zero() {
                return Err(ErrorKind::TimedOut);
            }
            conn.set_read_timeout(Some(left.max(Duration::from_millis(1)))).map_err(|e| e.kind())?;
            match conn.recv(&mut buf) {
                Ok(0) => return Err(ErrorKind::UnexpectedEof),
                Ok(n) => {
                    return match aw::decode_reply(&buf[..n]) {
                        Some((o, v, s)) if o == op && v == vcpu => Ok(s),
                        _ => Err(ErrorKind::InvalidData),
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock) => {}
                Err(e) if e.kind() == ErrorKind::TimedOut => {}
                Err(e) => return Err(e.kind()),
            }
        }
    }
}

#[cfg(test)]
#[path = "attach_tests.rs"]
mod tests;
