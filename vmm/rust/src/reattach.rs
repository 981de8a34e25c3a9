//! Attaching again, within a session, the vCPUs an attach connection lost when it closed (a
//! failed request, a closing status, the daemon closing it): at the VMM's call, from where it
//! reconnects, never on an exit; one connection per attempt, and a wait that doubles after an
//! attempt that leaves vCPUs lost (docs/protocol.md §9a).

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use super::Slot;
use crate::plugin::Plugin;

impl Plugin {
    /// vCPUs lost within the session with a closed attach connection, waiting for `reattach` (or
    /// the next WELCOME, which attaches every registered vCPU).
    pub fn lost_vcpus(&self) -> usize {
        self.attach.count(Slot::Lost)
    }

    /// True when, in a session, vCPUs are lost and the re-attach wait has passed: time to call
    /// `reattach`, from the timer or event loop that calls `connect` when `reconnect_due` says so,
    /// not on a vCPU thread. The first attempt after a loss is due at once, unless the wait after
    /// a failed attempt is still running. Also true when vCPUs are attached over a connection the
    /// daemon has closed (or that got a record no request asked for): `reattach` finds them lost.
    /// Waits for nothing.
    pub fn reattach_due(&self) -> bool {
        self.stream.is_some()
            && self.attach.reattach_at.map_or(true, |at| Instant::now() >= at)
            && (self.lost_vcpus() > 0 || (self.attached_vcpus() > 0 && self.attach.conn_closed()))
    }

    /// Attaches the lost vCPUs again in the current session, on one attach connection — the open
    /// one, else one fresh one — all replies within `Config::hello_timeout`; first, a connection
    /// the daemon closed is given up and its vCPUs are lost. Once that connection fails or a status
    /// closes it, the vCPUs not yet tried count as failed and stay lost, with those the closing
    /// released: no second connection is opened. An attempt that leaves vCPUs lost puts the next
    /// `RECONNECT_MIN` later, doubling up to `RECONNECT_MAX`; one that leaves none starts over. A
    /// vCPU the daemon refuses is no longer lost: it waits for the next WELCOME or `attach_vcpu`.
    /// Returns how many were attached again (0 outside a session, where nothing is lost), or the
    /// error that ended the connection (`ConnectionReset` for a closing status).
    pub fn reattach(&mut self) -> Result<usize, ErrorKind> {
        if self.stream.is_none() {
            return Ok(0);
        }
        if self.attached_vcpus() > 0 && self.attach.conn_closed() {
            self.attach.lose();
        }
        if self.lost_vcpus() == 0 {
            return Ok(0);
        }
        let r = self.attach_many(true, Instant::now() + self.config.hello_timeout);
        if self.lost_vcpus() == 0 {
            self.attach.backoff = Duration::ZERO;
            self.attach.reattach_at = None;
        } else {
            let wait = self.attach.backoff.max(Plugin::RECONNECT_MIN);
            self.attach.reattach_at = Some(Instant::now() + wait);
            self.attach.backoff = Plugin::next_backoff(wait);
        }
        r
    }
}
