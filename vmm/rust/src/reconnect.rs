//! The reconnect schedule (docs/protocol.md §9 rule 5) and the end of a session: when the next
//! connect is due, and what a lost connection does to the backoff and to the kept events. The
//! plugin never reconnects by itself; README.md, "Reconnecting".

use std::time::{Duration, Instant};

use super::Plugin;
use crate::types::{Error, Welcome};
use crate::wire;

impl Plugin {
    /// The reconnect backoff (§9 rule 5): the first wait after a failed connect or a lost
    /// connection, doubled after each failure up to `RECONNECT_MAX`, reset when a session proves
    /// useful — at the echo of its replays, at a VERDICT applied, or once it has been up
    /// `RECONNECT_MAX`. A WELCOME alone does not reset it: a daemon that ends every session right
    /// after WELCOME is reconnected to ever more slowly, up to the bound.
    pub const RECONNECT_MIN: Duration = Duration::from_millis(50);
    pub const RECONNECT_MAX: Duration = Duration::from_secs(2);

    /// True when the plugin is not connected and its reconnect backoff has passed: time to call
    /// `connect` (or `connect_stream` with a freshly opened stream) again. A plugin that never
    /// connected is due at once. The plugin never reconnects by itself; README.md, "Reconnecting".
    pub fn reconnect_due(&self) -> bool {
        self.stream.is_none() && self.reconnect_at.map_or(true, |at| Instant::now() >= at)
    }

    /// A failed attempt schedules the next one. A WELCOME starts a session but proves nothing,
    /// even with nothing to replay: the backoff is left as it is.
    pub(super) fn attempted(&mut self, r: Result<Welcome, Error>) -> Result<Welcome, Error> {
        if r.is_ok() {
            self.session_at = Instant::now();
            self.reconnect_at = None;
        } else {
            self.schedule_reconnect();
        }
        r
    }

    /// A HEARTBEAT: when it echoes the one sent after the replays, they are stored and forgotten,
    /// and the session has proved useful: the backoff starts over.
    pub(super) fn acknowledge(&mut self, body: &[u8]) {
        if self.kept.acknowledged(wire::get_u64(body, 0)) {
            self.proven();
        }
    }

    /// The current session proved useful: the next reconnect starts from the first step again.
    pub(super) fn proven(&mut self) {
        self.backoff = Plugin::RECONNECT_MIN;
    }

    /// The wait after `wait`: twice as long, up to `RECONNECT_MAX`. The reconnect and the
    /// re-attach backoff (reattach.rs) both step with it.
    pub(super) fn next_backoff(wait: Duration) -> Duration {
        (wait * 2).min(Plugin::RECONNECT_MAX)
    }

    fn schedule_reconnect(&mut self) {
        self.reconnect_at = Some(Instant::now() + self.backoff);
        self.backoff = Plugin::next_backoff(self.backoff);
    }

    /// A connection that was up is gone (`cause`: an error, the daemon's ERROR or GOODBYE): drop it
    /// and schedule the reconnect. Nothing when it was already down, so exits answered meanwhile
    /// do not push the reconnect further away.
    pub(super) fn lose_connection(&mut self, cause: &Error) {
        if self.stream.is_some() {
            self.end_replay_session(cause);
            self.drop_connection();
            // Up as long as the backoff's bound: the session proved useful (§9 rule 5).
            if self.session_at.elapsed() >= Plugin::RECONNECT_MAX {
                self.proven();
            }
            self.schedule_reconnect();
        }
    }

    /// A session ends before the echo of its replays. If it ends with the daemon's ERROR, the
    /// daemon refused one of them: the oldest replayed one is dropped (by the bound or here), one
    /// per such session, which loses nothing and ends the loop of a replay every session refuses.
    /// A connection that just drops keeps them all.
    /// Every lost session is read to its end, for a KILL waiting there (`on_late_kill`).
    pub(super) fn end_replay_session(&mut self, cause: &Error) {
        if self.stream.is_none() {
            return;
        }
        let error = matches!(cause, Error::Refused { .. }) || self.find_error();
        if error && self.kept.awaiting_echo() && self.kept.refused() {
            self.stats.replays_refused += 1;
        }
    }

    /// The daemon writes its ERROR and then stops reading (§8): a write may fail with the ERROR
    /// still unread. Reads the frames already received, looking for it. Before it can come at most
    /// a late VERDICT for each kept event, the VERDICT of the current one and the replay echo. The
    /// echo is taken on the way: the replays before it are stored, whatever ended the session.
    fn find_error(&mut self) -> bool {
        for _ in 0..self.kept.len() + 2 {
            match self.read_frame(Instant::now()) {
                Ok(Some((wire::MSG_ERROR, body))) => return wire::decode_refusal(&body).is_ok(),
                Ok(Some((wire::MSG_HEARTBEAT, body))) => self.acknowledge(&body),
                Ok(Some((wire::MSG_VERDICT, body))) => {
                    if let Ok(v) = wire::decode_verdict(&body) {
                        self.pass_on_kill(&v); // the daemon enforces it, read or not
                    }
                }
                Ok(Some(_)) => {}
                _ => return false,
            }
        }
        false
    }
}
