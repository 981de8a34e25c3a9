//! vCPU attachment (docs/protocol.md §9a, docs/actions.md "vCPU attachment"): the VMM registers its
//! vCPU fds, and for each session the plugin passes them to the daemon over the attach socket
//! (`SOCK_SEQPACKET`, the fd as `SCM_RIGHTS`), so that the daemon reads every exit from the
//! kernel's own `kvm_run` page instead of trusting the event's copy. Attachments are bound to a
//! session: after every WELCOME the registered vCPUs are attached again on a fresh connection,
//! and the connection is closed when the session ends. Optional: a missing attach socket, a
//! refusal or a timeout is counted and changes nothing else.
//!
//! An attach connection that closes within its session (a failed request, a closing status, the
//! daemon closing it) takes its vCPUs' attachments with it: those vCPUs are lost, and `reattach`
//! attaches them again when `reattach_due` says so, at the VMM's call, never on an exit
//! (reattach.rs).
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
use crate::types::AttachReply::Failed;
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
    /// vCPU index → the VMM's fd, and where it stands in the current session.
    vcpus: BTreeMap<u32, (RawFd, Slot)>,
    conn: Option<UnixDatagram>,
    /// When the next `reattach` is due (None: at once), and the wait after an attempt that leaves
    /// vCPUs lost (zero: `RECONNECT_MIN`).
    reattach_at: Option<Instant>,
    backoff: Duration,
}

/// A registered vCPU in the current session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Slot {
    /// Not attached: no session yet, or refused, or never reached an attach connection.
    #[default]
    Idle,
    /// The daemon said OK on the open attach connection.
    Attached,
    /// Attached, or its ATTACH sent, on an attach connection that closed within the session.
    Lost,
}

impl Attachments {
    /// `connect` to `path` (Some) or `connect_stream` (None): where the default attach socket is.
    pub(super) fn plugin_socket(&mut self, path: Option<&Path>) {
        self.derived = path.map(aw::default_socket);
    }

    /// `Plugin::close`: the VMM may close its vCPU fds after it, and a number it closed may soon
    /// name another file, so none is kept to be attached in a later session.
    pub(super) fn forget_vcpus(&mut self) {
        self.end_session();
        self.vcpus.clear();
    }

    /// The session ends and its connection with it: the next WELCOME attaches every vCPU anew, so
    /// none stays lost.
    fn end_session(&mut self) {
        self.conn = None;
        for v in self.vcpus.values_mut() {
            v.1 = Slot::Idle;
        }
        self.reattach_at = None;
        self.backoff = Duration::ZERO;
    }

    /// Closes the connection within its session: the daemon releases everything attached through
    /// it, and those vCPUs are lost.
    fn lose(&mut self) {
        self.conn = None;
        for v in self.vcpus.values_mut() {
            if v.1 == Slot::Attached {
                v.1 = Slot::Lost;
            }
        }
    }

    fn count(&self, slot: Slot) -> usize {
        self.vcpus.values().filter(|v| v.1 == slot).count()
    }

    /// True when the open connection can no longer serve: the daemon closed it, or a record came
    /// that no request asked for (it is out of step). Reads nothing.
    fn conn_closed(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| scm::peer_gone(c.as_raw_fd()))
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
    /// `vcpu_count` is an error, and nothing is registered or sent. A failure or a closing status
    /// closes the attach connection: the vCPUs attached over it are lost (`lost_vcpus`), and this
    /// one too when its ATTACH went out on it, for `reattach`.
    pub fn attach_vcpu(&mut self, vcpu: u32, fd: RawFd) -> Result<AttachReply, Error> {
        let bound = if self.vcpu_count > 0 { self.vcpu_count } else { VCPUS_MAX };
        if vcpu >= bound {
            return Err(Error::InvalidVcpu(vcpu));
        }
        let was = self.attach.vcpus.insert(vcpu, (fd, Slot::Idle)).map_or(Slot::Idle, |v| v.1);
        if self.stream.is_none() {
            return Ok(AttachReply::NotSent);
        }
        let deadline = Instant::now() + self.config.hello_timeout;
        Ok(self.attach_one(vcpu, fd, was == Slot::Lost, deadline).0)
    }

    /// Forgets vCPU `vcpu`; if the daemon has it attached, asks it to let go (DETACH) and returns
    /// its reply. After this the caller may close the fd.
    pub fn detach_vcpu(&mut self, vcpu: u32) -> AttachReply {
        match self.attach.vcpus.remove(&vcpu) {
            Some((_, Slot::Attached)) if self.stream.is_some() => {
                self.attach_request(aw::OP_DETACH, vcpu, None, Instant::now() + self.config.hello_timeout).0
            }
            _ => AttachReply::NotSent,
        }
    }

    /// vCPUs the daemon has attached in the current session, now.
    pub fn attached_vcpus(&self) -> usize {
        self.attach.count(Slot::Attached)
    }

    /// After WELCOME: attaches every registered vCPU on a fresh connection for the new session,
    /// all by `deadline`. One past this HELLO's `vcpu_count` is not sent (the daemon would refuse
    /// it) and counts as failed.
    pub(super) fn attach_session(&mut self, deadline: Instant) {
        self.attach.end_session();
        let _ = self.attach_many(false, deadline);
    }

    /// ATTACHes every registered vCPU, or only the lost ones, on one connection by `deadline`: once
    /// it fails or a status closes it, the rest count as failed without trying, and are lost if
    /// that connection had opened. The number attached, or the error that ended the connection.
    fn attach_many(&mut self, lost_only: bool, deadline: Instant) -> Result<usize, ErrorKind> {
        let vcpus: Vec<(u32, RawFd, Slot)> = self.attach.vcpus.iter().map(|(i, v)| (*i, v.0, v.1)).collect();
        let (mut done, mut end) = (0, None);
        for (vcpu, fd, slot) in vcpus {
            if lost_only && slot != Slot::Lost {
                continue;
            }
            if end.is_some() || vcpu >= self.vcpu_count {
                self.stats.attach_failed += 1;
                let opened = matches!(end, Some((_, true))) && vcpu < self.vcpu_count;
                if let (true, Some(v)) = (opened, self.attach.vcpus.get_mut(&vcpu)) {
                    v.1 = Slot::Lost;
                }
                continue;
            }
            let (reply, reached) = self.attach_one(vcpu, fd, slot == Slot::Lost, deadline);
            match reply {
                AttachReply::Ok => done += 1,
                Failed(kind) if self.attach.conn.is_none() => end = Some((kind, reached)),
                AttachReply::Refused(_) if self.attach.conn.is_none() => {
                    end = Some((ErrorKind::ConnectionReset, reached));
                }
                _ => {}
            }
        }
        end.map_or(Ok(done), |(kind, _)| Err(kind))
    }

    /// The session ended: its attach connection goes with it.
    pub(super) fn end_attach_session(&mut self) {
        self.attach.end_session();
    }

    /// ATTACHes registered vCPU `vcpu` and counts the outcome. One that got no answer is lost when
    /// its ATTACH went out on a connection that then failed, or when it was lost already (`was_lost`).
    fn attach_one(&mut self, vcpu: u32, fd: RawFd, was_lost: bool, deadline: Instant) -> (AttachReply, bool) {
        if let Some(v) = self.attach.vcpus.get_mut(&vcpu) {
            v.1 = Slot::Idle;
        }
        let (reply, reached) = self.attach_request(aw::OP_ATTACH, vcpu, Some(fd), deadline);
        match reply {
            AttachReply::Ok => self.stats.attached += 1,
            AttachReply::Refused(_) => self.stats.attach_refused += 1,
            Failed(_) => self.stats.attach_failed += 1,
            AttachReply::NotSent => {}
        }
        let slot = match reply {
            AttachReply::Ok => Slot::Attached,
            Failed(_) if reached || was_lost => Slot::Lost,
            _ => Slot::Idle,
        };
        if let Some(v) = self.attach.vcpus.get_mut(&vcpu) {
            v.1 = slot;
        }
        (reply, reached)
    }

    /// One request, and whether it went out on a connection. A failed exchange and a closing
    /// status close the connection.
    fn attach_request(
        &mut self,
        op: u16,
        vcpu: u32,
        fd: Option<RawFd>,
        deadline: Instant,
    ) -> (AttachReply, bool) {
        let Some(path) = self.attach_socket().map(Path::to_path_buf) else {
            return (AttachReply::NotSent, false);
        };
        if remaining(deadline).is_zero() {
            return (Failed(ErrorKind::TimedOut), false);
        }
        let record = aw::encode_request(op, self.welcome.session_id, vcpu);
        let (mut fresh, mut reached) = (false, false);
        loop {
            if self.attach.conn.is_none() {
                match connect::connect_seqpacket(&path) {
                    Ok(c) => self.attach.conn = Some(c),
                    Err(e) => return (Failed(e.kind()), reached),
                }
                fresh = true;
            }
            let conn = self.attach.conn.as_ref().expect("opened above");
            reached = true;
            match scm::send_with_fd(conn.as_raw_fd(), &record, fd) {
                Ok(()) => break,
                Err(e) => {
                    self.attach.lose();
                    // The daemon closes a connection that has nothing attached after a while
                    // (`attach.idleMs`): an ATTACH goes once more on a fresh one.
                    let closed = matches!(
                        e.kind(),
                        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::NotConnected
                    );
                    if fresh || !closed || op != aw::OP_ATTACH {
                        return (Failed(e.kind()), reached);
                    }
                }
            }
        }
        match self.attach_reply(op, vcpu, deadline) {
            Ok(s) if s == status::OK => (AttachReply::Ok, true),
            Ok(s) => {
                if status::closes(s) {
                    self.attach.lose();
                }
                (AttachReply::Refused(s), true)
            }
            Err(kind) => {
                // A reply still on its way would be taken for the next request's.
                self.attach.lose();
                (Failed(kind), true)
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

#[path = "reattach.rs"]
mod reattach;

#[cfg(test)]
#[path = "attach_tests.rs"]
mod tests;
