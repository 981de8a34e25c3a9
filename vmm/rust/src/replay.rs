//! The events the fallback answered, kept to be reported after the next WELCOME (docs/protocol.md
//! §9): written as REPLAYs followed by a HEARTBEAT, and forgotten only when the daemon echoes it —
//! it does so once everything before it is stored. A connection lost before the echo leaves them
//! kept, to be replayed again; the daemon recognises any it already stored. A session the daemon
//! ends with an ERROR before the echo refused one of them: the oldest replayed one is dropped, unless
//! the bound dropped it already.

use std::collections::VecDeque;

use crate::types::Action;
use crate::wire;

struct Kept {
    seq: u32,
    action: Action,
    frame: Vec<u8>,
}

#[derive(Default)]
pub(crate) struct Replay {
    kept: VecDeque<Kept>,
    /// The first `unacked` kept events were written before HEARTBEAT `nonce`, whose echo the
    /// session awaits while `awaiting`. `bound_dropped` once the bound has pushed out the oldest of
    /// them to keep a later exit: a session ended by an ERROR then drops no more.
    unacked: usize,
    nonce: u64,
    awaiting: bool,
    bound_dropped: bool,
    next_nonce: u64,
}

impl Replay {
    pub(crate) fn len(&self) -> usize {
        self.kept.len()
    }

    /// Keeps an event frame, marked REPLAY with the fallback it got; true when the bound made it
    /// drop the oldest.
    pub(crate) fn keep(&mut self, mut frame: Vec<u8>, seq: u32, action: Action, max: usize) -> bool {
        let dropped = self.kept.len() >= max.max(1);
        if dropped {
            self.kept.pop_front();
            if self.unacked > 0 {
                // The oldest replay awaiting the echo: what a refusal would drop.
                self.unacked -= 1;
                self.bound_dropped = true;
            }
        }
        wire::mark_replay(&mut frame, action);
        self.kept.push_back(Kept { seq, action, frame });
        dropped
    }

    /// Forgets the event `seq` (its late VERDICT came: the daemon has it); the fallback it got.
    pub(crate) fn forget(&mut self, seq: u32) -> Option<Action> {
        let i = self.kept.iter().position(|k| k.seq == seq)?;
        let kept = self.kept.remove(i)?;
        if i < self.unacked {
            self.unacked -= 1;
        }
        Some(kept.action)
    }

    /// Drops the kept events whose frame `refused` says the session would refuse; how many.
    pub(crate) fn drop_refused(&mut self, refused: impl Fn(&[u8]) -> bool) -> u64 {
        let before = self.kept.len();
        self.kept.retain(|k| !refused(&k.frame));
        (before - self.kept.len()) as u64
    }

    /// Every kept event as a REPLAY frame, then the HEARTBEAT that asks for their acknowledgement;
    /// None when nothing is kept.
    pub(crate) fn replay_frames(&mut self) -> Option<Vec<u8>> {
        if self.kept.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        for k in &self.kept {
            out.extend_from_slice(&k.frame);
        }
        self.next_nonce += 1;
        self.nonce = self.next_nonce;
        out.extend_from_slice(&wire::encode_heartbeat(self.nonce));
        self.unacked = self.kept.len();
        self.awaiting = true;
        self.bound_dropped = false;
        Some(out)
    }

    /// True from the replays until their echo, or the end of the session.
    pub(crate) fn awaiting_echo(&self) -> bool {
        self.awaiting
    }

    /// A HEARTBEAT echo: when it is the one sent after the replays, they are stored; forget them.
    /// True then: the session proved useful.
    pub(crate) fn acknowledged(&mut self, nonce: u64) -> bool {
        if !self.awaiting || nonce != self.nonce {
            return false;
        }
        self.kept.drain(..self.unacked.min(self.kept.len()));
        self.unacked = 0;
        self.awaiting = false;
        self.bound_dropped = false;
        true
    }

    /// The daemon ended the session with an ERROR before the echo: it stores replays in order (and
    /// recognises those it holds), so the oldest one replayed is stored already or the refused one.
    /// Drops it; true when there was one. When the bound dropped it already, to keep a later exit,
    /// nothing more goes: the next one may be the refused one, never stored.
    pub(crate) fn refused(&mut self) -> bool {
        if !self.awaiting || self.unacked == 0 || self.bound_dropped {
            return false;
        }
        self.kept.pop_front();
        self.unacked -= 1;
        true
    }

    /// The connection is gone before the echo: everything kept goes again after the next WELCOME.
    pub(crate) fn unsent(&mut self) {
        self.unacked = 0;
        self.awaiting = false;
        self.bound_dropped = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Vec<u8> {
        vec![0u8; 64]
    }

    #[test]
    fn a_forgotten_event_leaves_no_slot_behind_and_is_never_counted_as_dropped() {
        let mut r = Replay::default();
        // 100 exits past their deadline, each decided late: nothing is lost, nothing left.
        for seq in 1..=100 {
            assert!(!r.keep(frame(), seq, Action::Inject, 64), "seq {seq}");
            assert_eq!(r.forget(seq), Some(Action::Inject));
        }
        assert_eq!(r.len(), 0);
        // Only an event past the bound is dropped, and a forgotten one frees its place.
        let drops = (101..=165).filter(|&seq| r.keep(frame(), seq, Action::Inject, 64)).count();
        assert_eq!((r.len(), drops), (64, 1));
        assert_eq!(r.forget(110), Some(Action::Inject));
        assert!(!r.keep(frame(), 166, Action::Inject, 64));
        // Replayed, one decided late before the echo, a new one kept: the echo takes the 63 left.
        r.replay_frames().expect("64 to replay");
        assert_eq!(r.forget(120), Some(Action::Inject));
        r.keep(frame(), 167, Action::Inject, 64);
        r.acknowledged(r.nonce);
        assert_eq!(r.kept.iter().map(|k| k.seq).collect::<Vec<_>>(), vec![167]);
    }
}
