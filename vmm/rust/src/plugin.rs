//! One connection to the daemon for one VM: HELLO, events with a deadline, the local fallback,
//! and replay after a reconnect (docs/protocol.md §3, §9). Calls take `&mut self`: a VMM whose
//! vCPU threads share one `Plugin` puts it behind a `Mutex` (§5.4).
//!
//! Longer than 350 lines: one connection's state (stream, receive buffer, kept events) and every
//! step that changes it — handshake, exchange, replay — kept together; the reconnect schedule and
//! what the end of a session does are in reconnect.rs, the attached vCPUs (§9a) in attach.rs.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::connect;
use crate::fallback::fallback_verdict;
use crate::replay::Replay;
use crate::types::{Action, Config, Error, Exit, Hello, Verdict, Welcome};
use crate::verdict_checks;
use crate::wire::{self, HEADER_SIZE};

/// Counters for the VMM's own logs and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Exits answered by the fallback (`invalid_events` included).
    pub fallbacks: u64,
    /// REPLAY events written (one written twice, after two reconnects, counts twice).
    pub replayed: u64,
    /// Kept events dropped because the bound was reached.
    pub kept_dropped: u64,
    /// VERDICTs that came after the fallback had answered their event.
    pub late_verdicts: u64,
    /// The KILLs among them, and those read behind the end of a session or while closing: each is
    /// handed to the hook set by `Plugin::on_late_kill`.
    pub late_kills: u64,
    /// Exits answered by the fallback at once because an earlier exit had missed its deadline on
    /// the connection and the daemon had not answered since (README.md, "Threads").
    pub stalled_fallbacks: u64,
    /// Exits answered by the fallback and neither sent nor kept because the daemon would refuse
    /// the event (a vCPU index past the HELLO's `vcpu_count`, …), and kept events dropped for the
    /// same reason before a replay.
    pub invalid_events: u64,
    /// Kept events dropped because the daemon ended their replay session with an ERROR (§9); one
    /// the bound dropped first in that session counts in `kept_dropped` instead.
    pub replays_refused: u64,
    /// VERDICTs refused because their INJECT image fails the checks against the HELLO (§5.1,
    /// README.md "Checks"): each a protocol error, its exit answered by the fallback.
    pub refused_verdicts: u64,
    /// ATTACHes the daemon said OK to (a vCPU attached again, in each session or by `reattach`,
    /// counts each time); `attached_vcpus()` is how many are attached now.
    pub attached: u64,
    /// ATTACHes the daemon refused (`AttachReply::Refused`).
    pub attach_refused: u64,
    /// ATTACHes that got no answer: the attach socket could not be reached, the connection
    /// failed or the reply did not come in time (`AttachReply::Failed`), registered vCPUs past a
    /// new session's `vcpu_count`, not sent, and vCPUs a failed connection left untried (after
    /// WELCOME or in `reattach`).
    pub attach_failed: u64,
}

pub struct Plugin {
    config: Config,
    stream: Option<UnixStream>,
    welcome: Welcome,
    /// `vcpu_count` of the last HELLO that got WELCOME (0 before the first): what events are
    /// checked against.
    vcpu_count: u32,
    /// `caps` of that HELLO: in 1.1 an event kind needs its capability declared (§4.4).
    caps: u32,
    /// `caps` of the HELLO of the last connect attempt, answered or not (`u32::MAX` before the
    /// first): without `INJECT_EXT_DABT` the inject fallback is RESUME (fallback.rs).
    declared_caps: u32,
    /// The minor the next HELLO asks for: `Config::minor`, lowered for the one retry after a daemon
    /// that speaks less (§10).
    ask_minor: u16,
    next_seq: u32,
    /// Bytes of a frame not yet complete: a frame may arrive across several reads and deadlines.
    rx: Vec<u8>,
    kept: Replay,
    stats: Stats,
    /// When the next connect is due (None: at once), and how long the failure after it waits.
    reconnect_at: Option<Instant>,
    backoff: Duration,
    /// When the current session got its WELCOME: one up `RECONNECT_MAX` proved useful.
    session_at: Instant,
    /// Registered vCPU fds and the session's attach connection (attach.rs).
    attach: attach::Attachments,
    /// What a late KILL is handed to (`on_late_kill`).
    late_kill: Option<Box<dyn FnMut(&Verdict) + Send>>,
    /// True once an exit has missed its deadline on this connection, until the daemon answers
    /// again (a VERDICT or a HEARTBEAT): meanwhile exits get the fallback at once.
    stalled: bool,
}

fn realtime_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

impl Plugin {
    pub fn new(config: Config) -> Plugin {
        let ask_minor = config.minor.min(wire::PROTOCOL_MINOR);
        Plugin {
            config,
            stream: None,
            welcome: Welcome::default(),
            vcpu_count: 0,
            caps: 0,
            declared_caps: u32::MAX,
            ask_minor,
            next_seq: 1,
            rx: Vec::new(),
            kept: Replay::default(),
            stats: Stats::default(),
            reconnect_at: None,
            backoff: Plugin::RECONNECT_MIN,
            session_at: Instant::now(),
            attach: attach::Attachments::default(),
            late_kill: None,
            stalled: false,
        }
    }

    /// Hands `hook` every KILL VERDICT that comes after its exit's deadline, when the fallback had
    /// already answered that exit. The daemon enforces a KILL even when it is late (§5.1): it
    /// started the grace when it wrote the VERDICT and SIGKILLs the VMM at its end, so the VMM
    /// must start terminating the VM within `grace_ms`. In 1.1 the daemon is still told, with
    /// APPLIED source FALLBACK, that the vCPU got the fallback. The hook runs inside whichever call
    /// read the VERDICT (`handle_exit` of another exit, `poll`, `close`, or a call that found the
    /// connection broken), on that call's thread and with the plugin borrowed (behind your `Mutex`,
    /// with the lock held): it must not use the plugin, only start the shutdown (set a flag, send
    /// on a channel) and return. Without a hook a late KILL is only counted (`Stats::late_kills`)
    /// and the VM is killed at the end of the grace without warning.
    pub fn on_late_kill(&mut self, hook: impl FnMut(&Verdict) + Send + 'static) {
        self.late_kill = Some(Box::new(hook));
    }

    /// A VERDICT no exit waits for (late, or behind the end of a session): a KILL is handed on.
    fn pass_on_kill(&mut self, v: &Verdict) {
        if v.action != Action::Kill {
            return;
        }
        self.stats.late_kills += 1;
        if let Some(hook) = self.late_kill.as_mut() {
            hook(v);
        }
    }

    pub fn connected(&self) -> bool {
        self.stream.is_some()
    }

    /// The session WELCOME admitted (zeros before the first one).
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Events answered by the fallback and not yet acknowledged by the daemon.
    pub fn kept(&self) -> usize {
        self.kept.len()
    }

    /// Connects to the daemon's socket, says HELLO and waits for WELCOME, then replays kept
    /// events. A daemon that speaks a lower 1.x (REJECT VERSION, or a 1.0 daemon's ERROR
    /// BAD_FIELD) is asked again once with the version it speaks (§10); the next `connect` asks
    /// for `Config::minor` again, so a daemon upgraded meanwhile gets the highest version.
    pub fn connect(&mut self, path: impl AsRef<Path>, hello: &Hello) -> Result<Welcome, Error> {
        self.attach.plugin_socket(Some(path.as_ref()));
        self.declared_caps = hello.caps;
        let r = self.connect_lowering(path.as_ref(), hello);
        self.ask_minor = self.max_minor();
        self.attempted(r)
    }

    fn max_minor(&self) -> u16 {
        self.config.minor.min(wire::PROTOCOL_MINOR)
    }

    fn connect_lowering(&mut self, path: &Path, hello: &Hello) -> Result<Welcome, Error> {
        match self.connect_once(path, hello) {
            Err(Error::Refused { code, text, supported }) => {
                let refused = Error::Refused { code, text, supported };
                if self.lower_minor(code, supported) {
                    self.connect_once(path, hello)
                } else {
                    Err(refused)
                }
            }
            other => other,
        }
    }

    /// The same over a stream the VMM already connected; a refused handshake closes it, and the
    /// next call (the retry) asks for the version the daemon named; the call after that asks for
    /// `Config::minor` again. The stream is made blocking, whatever mode it came in (one taken
    /// from an event loop may be non-blocking): every wait here is a socket timeout, which a
    /// non-blocking stream ignores, so its reads would spin until the deadline and a write the
    /// daemon does not take at once would fail. An error making it so closes it.
    pub fn connect_stream(&mut self, stream: UnixStream, hello: &Hello) -> Result<Welcome, Error> {
        self.attach.plugin_socket(None); // no default attach socket: `set_attach_socket` names one
        self.declared_caps = hello.caps;
        let r = match stream.set_nonblocking(false) {
            Ok(()) => self.handshake(stream, hello),
            Err(e) => Err(e.into()),
        };
        let retry =
            matches!(&r, Err(Error::Refused { code, supported, .. }) if self.lower_minor(*code, *supported));
        if !retry {
            self.ask_minor = self.max_minor();
        }
        self.attempted(r)
    }

    fn connect_once(&mut self, path: &Path, hello: &Hello) -> Result<Welcome, Error> {
        wire::encode_hello(hello, self.ask_minor)?; // refuse a bad HELLO before connecting
        let stream = connect::connect(path)?; // never blocks: a full backlog fails at once
        self.handshake(stream, hello)
    }

    fn lower_minor(&mut self, code: u16, supported: Option<(u16, u16)>) -> bool {
        if self.ask_minor == 0 {
            return false;
        }
        match (code, supported) {
            (wire::ERR_VERSION, Some((wire::PROTOCOL_VERSION, minor))) if minor < self.ask_minor => {
                self.ask_minor = minor;
                true
            }
            (wire::ERR_BAD_FIELD, _) => {
                self.ask_minor = 0;
                true
            }
            _ => false,
        }
    }

    fn handshake(&mut self, stream: UnixStream, hello: &Hello) -> Result<Welcome, Error> {
        self.drop_connection();
        let frame = wire::encode_hello(hello, self.ask_minor)?;
        let deadline = Instant::now() + self.config.hello_timeout;
        self.stream = Some(stream);
        let r = self.await_welcome(&frame, deadline);
        if r.is_err() {
            self.drop_connection();
        }
        r
    }

    fn await_welcome(&mut self, hello: &[u8], deadline: Instant) -> Result<Welcome, Error> {
        self.write_all(hello, deadline)?;
        loop {
            let (kind, body) = self.read_frame(deadline)?.ok_or(Error::Timeout)?;
            match kind {
                wire::MSG_WELCOME => {
                    self.welcome = wire::decode_welcome(&body, self.ask_minor)?;
                    self.vcpu_count = wire::get_u32(hello, HEADER_SIZE + 12);
                    self.caps = wire::get_u32(hello, HEADER_SIZE + 4);
                    if let Err(e) = self.flush_replay(deadline) {
                        self.end_replay_session(&e); // an ERROR may be waiting behind the write
                        return Err(e);
                    }
                    // A new session: the vCPUs the VMM registered are attached to it again.
                    self.attach_session(deadline);
                    return Ok(self.welcome);
                }
                wire::MSG_REJECT | wire::MSG_ERROR => return Err(wire::decode_refusal(&body)?),
                // HEARTBEATs alone do not extend the wait.
                wire::MSG_HEARTBEAT if remaining(deadline).is_zero() => return Err(Error::Timeout),
                wire::MSG_HEARTBEAT => {}
                _ => return Err(Error::Protocol(format!("type 0x{kind:x} before WELCOME"))),
            }
        }
    }

    /// Reports one exit and returns the verdict to apply: the daemon's, or the fallback when the
    /// deadline passes or the connection is down (the event is then kept for replay), or when the
    /// daemon would refuse the event (then neither sent nor kept: `Stats::invalid_events`).
    pub fn handle_exit(&mut self, exit: &Exit) -> Verdict {
        let seq = self.next_seq;
        self.next_seq = if seq == u32::MAX { 1 } else { seq + 1 };
        let frame = wire::encode_exit(exit, seq, realtime_ns());
        // Connected, the session's checks; while not, only those every version makes (§4.4).
        let minor = if self.stream.is_some() { self.welcome.minor } else { 0 };
        if wire::refused_event(&frame, self.vcpu_count, self.caps, minor) {
            self.stats.fallbacks += 1;
            self.stats.invalid_events += 1;
            return fallback_verdict(self.config.fallback, seq, exit, self.declared_caps);
        }
        // While stalled (an exit missed its deadline and the daemon has not answered since), first
        // take what the daemon sent meanwhile: any answer ends the stall. Still stalled, this exit
        // gets no wait at all: one queued on the VMM's mutex behind an exit that waited a whole
        // deadline for a frozen daemon must not wait another (README.md, "Threads").
        let taken = if self.stalled && self.stream.is_some() { self.take_answer() } else { Ok(()) };
        let stalled = self.stalled;
        let deadline = Instant::now() + if stalled { Duration::ZERO } else { self.config.deadline };
        match taken.and_then(|()| self.exchange(&frame, seq, deadline)) {
            Ok(Some(v)) => return v,
            Ok(None) => {
                // The deadline passed: keep the connection, the verdict may still come.
                self.stalled = true;
                self.stats.stalled_fallbacks += u64::from(stalled);
            }
            Err(e) => self.lose_connection(&e),
        }
        self.stats.fallbacks += 1;
        let verdict = fallback_verdict(self.config.fallback, seq, exit, self.declared_caps);
        if self.kept.keep(frame, seq, verdict.action, self.config.max_kept) {
            self.stats.kept_dropped += 1;
        }
        verdict
    }

    /// Reads one frame, if one is already there, and handles it.
    fn take_answer(&mut self) -> Result<(), Error> {
        if let Some((kind, body)) = self.read_frame(Instant::now())? {
            self.dispatch(kind, &body, None, Instant::now() + self.config.deadline)?;
        }
        Ok(())
    }

    fn exchange(&mut self, frame: &[u8], seq: u32, deadline: Instant) -> Result<Option<Verdict>, Error> {
        self.write_all(frame, deadline)?;
        loop {
            let Some((kind, body)) = self.read_frame(deadline)? else {
                return Ok(None);
            };
            if let Some(v) = self.dispatch(kind, &body, Some(seq), deadline)? {
                // An INJECT whose image the declared host would refuse or misread is a protocol
                // error: the exit gets the fallback, kept for the replay after the reconnect (§5.1).
                if let Some(why) = verdict_checks::refusal(&v, wire::get_u16(frame, 4), self.caps) {
                    self.stats.refused_verdicts += 1;
                    return Err(Error::Protocol(format!("VERDICT with {why}")));
                }
                self.proven(); // a verdict applied: the session proved useful
                return Ok(Some(v));
            }
            // read_frame looks at the clock only when nothing is there to read: a daemon that keeps
            // sending other frames (HEARTBEATs, late verdicts) must not hold the vCPU past its deadline.
            if remaining(deadline).is_zero() {
                return Ok(None);
            }
        }
    }

    /// One frame outside the handshake: the VERDICT for `seq` is returned, anything else handled;
    /// what it writes back (the APPLIED for a late verdict) must be out by `deadline`.
    fn dispatch(
        &mut self,
        kind: u16,
        body: &[u8],
        seq: Option<u32>,
        deadline: Instant,
    ) -> Result<Option<Verdict>, Error> {
        match kind {
            wire::MSG_VERDICT => {
                let v = wire::decode_verdict(body)?;
                self.stalled = false; // the daemon answers again
                if Some(v.seq) == seq {
                    return Ok(Some(v));
                }
                self.late_verdict(&v, deadline)?;
                Ok(None)
            }
            wire::MSG_HEARTBEAT => {
                self.stalled = false;
                self.acknowledge(body);
                Ok(None)
            }
            wire::MSG_ERROR => Err(wire::decode_refusal(body)?),
            wire::MSG_GOODBYE => Err(Error::NotConnected),
            _ => Err(Error::Protocol(format!("type 0x{kind:x} after WELCOME"))),
        }
    }

    /// A VERDICT for an event the fallback answered: never applied, but a KILL is passed on (the
    /// daemon enforces it); the kept copy is forgotten (the daemon counted it), and in 1.1 the
    /// daemon is told what the vCPU got (§4.6).
    fn late_verdict(&mut self, v: &Verdict, deadline: Instant) -> Result<(), Error> {
        self.stats.late_verdicts += 1;
        self.pass_on_kill(v);
        let seq = v.seq;
        let Some(action) = self.kept.forget(seq) else {
            return Ok(());
        };
        if self.welcome.minor >= 1 {
            let frame = wire::encode_applied(seq, 0, Some((action, wire::APPLIED_FALLBACK)));
            self.write_all(&frame, deadline)?;
        }
        Ok(())
    }

    /// Reads what the daemon sent while no exit waits — late verdicts and HEARTBEAT echoes —
    /// waiting up to `timeout` for the first frame. Returns how many frames were handled.
    pub fn poll(&mut self, timeout: Duration) -> Result<usize, Error> {
        if self.stream.is_none() {
            return Err(Error::NotConnected);
        }
        let mut deadline = Instant::now() + timeout;
        let mut handled = 0;
        loop {
            let frame = match self.read_frame(deadline) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(handled),
                Err(e) => {
                    self.lose_connection(&e);
                    return Err(e);
                }
            };
            if let Err(e) = self.dispatch(frame.0, &frame.1, None, Instant::now() + self.config.deadline) {
                self.lose_connection(&e);
                return Err(e);
            }
            handled += 1;
            deadline = Instant::now(); // after the first frame, take only what is already there
        }
    }

    /// Reports the result of applying the daemon's verdict `seq` (0 or -errno).
    pub fn send_applied(&mut self, seq: u32, result: i32) -> Result<(), Error> {
        self.send(&wire::encode_applied(seq, result, None))
    }

    /// Reports that the vCPU got `action` from the fallback instead of verdict `seq` (e.g. after
    /// the injection failed with `result`): the 1.1 16-byte APPLIED, the plain one in 1.0.
    pub fn send_applied_fallback(&mut self, seq: u32, result: i32, action: Action) -> Result<(), Error> {
        let what = (self.welcome.minor >= 1).then_some((action, wire::APPLIED_FALLBACK));
        self.send(&wire::encode_applied(seq, result, what))
    }

    /// Says GOODBYE (`wire::goodbye::*`), reads until the daemon's GOODBYE or end of file, closes
    /// (the attach connection too), and forgets the registered vCPUs: the VMM may close their fds.
    pub fn close(&mut self, reason: u16) {
        self.attach.forget_vcpus();
        if self.stream.is_none() {
            return;
        }
        let deadline = Instant::now() + self.config.deadline;
        if self.write_all(&wire::encode_goodbye(reason), deadline).is_ok() {
            // Verdicts still in flight are not applied, but a KILL among them is passed on.
            while let Ok(Some((kind, body))) = self.read_frame(deadline) {
                if kind == wire::MSG_GOODBYE {
                    break;
                }
                if let (wire::MSG_VERDICT, Ok(v)) = (kind, wire::decode_verdict(&body)) {
                    self.pass_on_kill(&v);
                }
                if remaining(deadline).is_zero() {
                    break;
                }
            }
        }
        self.drop_connection();
    }

    fn send(&mut self, frame: &[u8]) -> Result<(), Error> {
        if self.stream.is_none() {
            return Err(Error::NotConnected);
        }
        let r = self.write_all(frame, Instant::now() + self.config.deadline);
        if let Err(e) = &r {
            self.lose_connection(e);
        }
        r
    }

    /// Writes the kept events as REPLAYs, then a HEARTBEAT whose echo acknowledges them (§9). A
    /// kept event this session would refuse is dropped first and counted as invalid.
    fn flush_replay(&mut self, deadline: Instant) -> Result<(), Error> {
        let (vcpus, caps, minor) = (self.vcpu_count, self.caps, self.welcome.minor);
        self.stats.invalid_events += self.kept.drop_refused(|f| wire::refused_event(f, vcpus, caps, minor));
        let Some(out) = self.kept.replay_frames() else {
            return Ok(());
        };
        self.write_all(&out, deadline)?;
        self.stats.replayed += self.kept.len() as u64;
        Ok(())
    }

    fn drop_connection(&mut self) {
        self.end_attach_session();
        self.stream = None;
        self.rx.clear();
        self.kept.unsent();
        self.stalled = false; // a new session starts unstalled
    }

    fn write_all(&mut self, buf: &[u8], deadline: Instant) -> Result<(), Error> {
        let stream = self.stream.as_mut().ok_or(Error::NotConnected)?;
        stream.set_write_timeout(Some(remaining(deadline).max(Duration::from_millis(1))))?;
        stream.write_all(buf).map_err(|e| match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => Error::Timeout,
            _ => Error::Io(e),
        })
    }

    /// One whole frame before `deadline`, or None when it passes (a partial frame stays in `rx`).
    fn read_frame(&mut self, deadline: Instant) -> Result<Option<(u16, Vec<u8>)>, Error> {
        loop {
            let mut need = HEADER_SIZE;
            if self.rx.len() >= HEADER_SIZE {
                let len = wire::get_u32(&self.rx, 0);
                let kind = wire::get_u16(&self.rx, 4);
                wire::check_header(len, kind, wire::get_u16(&self.rx, 6))?;
                need = HEADER_SIZE + len as usize;
                if self.rx.len() == need {
                    let body = self.rx.split_off(HEADER_SIZE);
                    self.rx.clear();
                    return Ok(Some((kind, body)));
                }
            }
            let stream = self.stream.as_mut().ok_or(Error::NotConnected)?;
            stream.set_read_timeout(Some(remaining(deadline).max(Duration::from_millis(1))))?;
            let mut buf = [0u8; 4096];
            // No further than the current frame, so nothing is left over between frames.
            let want = (need - self.rx.len()).min(buf.len());
            match stream.read(&mut buf[..want]) {
                Ok(0) => return Err(Error::Io(ErrorKind::UnexpectedEof.into())),
                Ok(n) => self.rx.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if remaining(deadline).is_zero() {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(Error::Io(e)),
            }
        }
    }
}

#[path = "reconnect.rs"]
mod reconnect;

#[path = "attach.rs"]
mod attach;

#[cfg(test)]
#[path = "plugin_tests.rs"]
mod tests;
