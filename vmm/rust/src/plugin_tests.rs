//! Unit tests of `plugin.rs` that reach its private state (the reconnect schedule); the daemon's
//! end is the other half of a socket pair, played by hand.

use super::*;
use crate::Source;

fn hello() -> Hello {
    Hello { caps: 3, vmm_pid: std::process::id(), vcpu_count: 1, vm_id: "re".into(), ..Hello::default() }
}

/// A WELCOME frame for 1.`minor` (a 1.0 one keeps max_body reserved).
fn welcome_minor(minor: u8) -> Vec<u8> {
    let mut welcome = vec![24, 0, 0, 0, wire::MSG_WELCOME as u8, 0, 0, 0, 1, 0, minor, 0, 16, 0, 0, 0];
    welcome.extend_from_slice(&[0; 8]); // session id
    welcome.extend_from_slice(&5000u32.to_le_bytes());
    welcome.extend_from_slice(&(if minor >= 1 { 16384u32 } else { 0 }).to_le_bytes());
    welcome
}

/// A 1.1 WELCOME frame (attach_tests.rs too).
pub(super) fn welcome() -> Vec<u8> {
    welcome_minor(1)
}

/// An ERROR frame with `code` and no text.
fn error(code: u16) -> Vec<u8> {
    let mut f = vec![4, 0, 0, 0, wire::MSG_ERROR as u8, 0, 0, 0];
    f.extend_from_slice(&code.to_le_bytes());
    f.extend_from_slice(&[0, 0]);
    f
}

/// Every byte waiting on the daemon's end now, read without blocking.
fn available(daemon: &mut UnixStream) -> Vec<u8> {
    daemon.set_nonblocking(true).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n @ 1..) = daemon.read(&mut chunk) {
        buf.extend_from_slice(&chunk[..n]);
    }
    daemon.set_nonblocking(false).unwrap();
    buf
}

/// What the plugin wrote to the daemon's end and is there to read now, one word a frame:
/// "hello/1.<minor>", "<kind><seq>" for an event with "r" after a REPLAY, "hb" for a HEARTBEAT;
/// "-" when nothing. Also the last HEARTBEAT's nonce.
fn sent(daemon: &mut UnixStream) -> (String, u64) {
    let buf = available(daemon);
    let (mut words, mut nonce, mut o) = (Vec::new(), 0, 0);
    while o + HEADER_SIZE <= buf.len() {
        let (len, kind, b) = (wire::get_u32(&buf, o) as usize, wire::get_u16(&buf, o + 4), o + HEADER_SIZE);
        words.push(match kind {
            wire::MSG_HELLO => format!("hello/1.{}", wire::get_u16(&buf, b + 2)),
            wire::MSG_HEARTBEAT => {
                nonce = wire::get_u64(&buf, b);
                "hb".into()
            }
            wire::MSG_EVENT_SEA..=wire::MSG_EVENT_SIGBUS => {
                let name = ["sea", "nisv", "mmio", "sigbus"][usize::from(kind - wire::MSG_EVENT_SEA)];
                let replay = if wire::get_u16(&buf, b + 16) & wire::EVENT_REPLAY != 0 { "r" } else { "" };
                format!("{name}{}{replay}", wire::get_u32(&buf, b))
            }
            _ => format!("t{kind}"),
        });
        o = b + len;
    }
    (if words.is_empty() { "-".into() } else { words.join(" ") }, nonce)
}

/// The wait the call between `before` and `after` scheduled was `expect`.
fn waited(p: &Plugin, before: Instant, after: Instant, expect: Duration) -> bool {
    let at = p.reconnect_at.expect("a reconnect is scheduled");
    at >= before + expect && at <= after + expect
}

#[test]
fn the_backoff_both_schedules_step_with_doubles_from_50_ms_and_stays_at_its_2_s_bound() {
    let mut wait = Plugin::RECONNECT_MIN;
    let mut seen = vec![wait.as_millis()];
    for _ in 0..7 {
        wait = Plugin::next_backoff(wait);
        seen.push(wait.as_millis());
    }
    assert_eq!(seen, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
}

#[test]
fn reconnect_backoff_doubles_to_its_bound_resets_on_the_replay_echo_and_is_armed_by_a_loss() {
    let mut p = Plugin::new(Config { deadline: Duration::from_millis(200), ..Config::default() });
    assert!(p.reconnect_due(), "never connected: due at once");
    let path = std::env::temp_dir().join(format!("seawall-rust-re-{}.sock", std::process::id()));
    let mut expect = Plugin::RECONNECT_MIN;
    for ms in [50, 100, 200, 400, 800, 1600, 2000, 2000] {
        assert_eq!(expect, Duration::from_millis(ms));
        let before = Instant::now();
        assert!(p.connect(&path, &hello()).is_err());
        assert!(waited(&p, before, Instant::now(), expect), "failure waiting {ms} ms");
        expect = (expect * 2).min(Plugin::RECONNECT_MAX);
    }
    // Exits answered while down do not push the reconnect away.
    let at = p.reconnect_at;
    let sea = Exit::Sea { vcpu: 0, kvm_flags: 1, esr: 0x9200_0010, gva: 0, gpa: 0 };
    assert_eq!(p.handle_exit(&sea).source, crate::Source::Fallback);
    assert_eq!(p.reconnect_at, at);
    while !p.reconnect_due() {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(Instant::now() >= at.unwrap());

    // The kept exit is replayed after WELCOME; the echo of the replays resets the backoff.
    let (ours, mut daemon) = UnixStream::pair().unwrap();
    daemon.write_all(&welcome()).unwrap();
    p.connect_stream(ours, &hello()).expect("WELCOME");
    assert!(!p.reconnect_due());
    assert_eq!((p.backoff, p.reconnect_at, p.stats().replayed), (Plugin::RECONNECT_MAX, None, 1));
    let (_, nonce) = sent(&mut daemon);
    daemon.write_all(&wire::encode_heartbeat(nonce)).unwrap();
    assert_eq!(p.poll(Duration::from_secs(5)).unwrap(), 1);
    assert_eq!((p.backoff, p.kept()), (Plugin::RECONNECT_MIN, 0));

    // The daemon goes away: the exit that finds out schedules the reconnect.
    drop(daemon);
    let before = Instant::now();
    assert_eq!(p.handle_exit(&sea).source, crate::Source::Fallback);
    assert!(!p.connected());
    assert!(waited(&p, before, Instant::now(), Plugin::RECONNECT_MIN));
}

#[test]
fn a_daemon_that_floods_heartbeats_and_never_answers_gets_the_fallback_at_the_deadline() {
    let (ours, mut daemon) = UnixStream::pair().unwrap();
    daemon.write_all(&welcome()).unwrap();
    let mut p = Plugin::new(Config { deadline: Duration::from_millis(500), ..Config::default() });
    p.connect_stream(ours, &hello()).expect("WELCOME");
    // HEARTBEATs as fast as the plugin reads them, until it closes its end or 10 s pass.
    let flood = std::thread::spawn(move || {
        let blob = [[8, 0, 0, 0, wire::MSG_HEARTBEAT as u8, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0]; 512].concat();
        daemon.set_write_timeout(Some(Duration::from_millis(50))).unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            match daemon.write(&blob) {
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return "peer", // the plugin closed its end
            }
        }
        "timer"
    });
    let sea = Exit::Sea { vcpu: 0, kvm_flags: 1, esr: 0x9200_0010, gva: 0, gpa: 0 };
    let v = p.handle_exit(&sea);
    let connected = p.connected();
    drop(p);
    assert_eq!(flood.join().unwrap(), "peer", "handle_exit returned while the flood went on");
    assert_eq!(v.source, crate::Source::Fallback);
    assert!(connected, "a verdict that did not come in time keeps the connection");
}

fn sea(vcpu: u32) -> Exit {
    Exit::Sea { vcpu, kvm_flags: 1, esr: 0x9200_0010, gva: 0, gpa: 0 }
}

/// A fresh connection whose daemon end already holds `answer`; what the plugin sent on it.
fn session(
    p: &mut Plugin,
    hello: &Hello,
    answer: &[u8],
) -> (Result<Welcome, Error>, UnixStream, String, u64) {
    let (ours, mut daemon) = UnixStream::pair().unwrap();
    daemon.write_all(answer).unwrap();
    let r = p.connect_stream(ours, hello);
    let (words, nonce) = sent(&mut daemon);
    (r, daemon, words, nonce)
}

#[test]
fn replay_sessions_ended_by_an_error_drain_the_kept_events_one_each_and_the_backoff_doubles() {
    let mut p = Plugin::new(Config { deadline: Duration::from_secs(5), ..Config::default() });
    for _ in 0..3 {
        p.handle_exit(&sea(0)); // never connected: seqs 1, 2, 3 kept
    }
    let mut seen = Vec::new();
    // The plugin finds the ERROR by reading, or behind a write that fails once the daemon has
    // closed (the second session).
    for s in 1..=3 {
        let (r, mut daemon, words, _) = session(&mut p, &hello(), &welcome());
        assert!(r.is_ok());
        daemon.write_all(&error(wire::ERR_BAD_FIELD)).unwrap();
        drop(daemon);
        let refused =
            if s == 2 { p.send_applied(1, 0).is_err() } else { p.poll(Duration::from_secs(5)).is_err() };
        assert!(refused && !p.connected());
        seen.push((words, p.kept(), p.stats().replays_refused, p.backoff.as_millis()));
    }
    let want: Vec<_> = [
        ("hello/1.1 sea1r sea2r sea3r hb", 2, 1, 100),
        ("hello/1.1 sea2r sea3r hb", 1, 2, 200),
        ("hello/1.1 sea3r hb", 0, 3, 400),
    ]
    .into_iter()
    .map(|(w, k, r, b)| (w.to_string(), k, r, b))
    .collect();
    assert_eq!(seen, want);

    // Nothing left to replay: the WELCOME alone proves nothing, the backoff stays where it was.
    let (_, _daemon, words, _) = session(&mut p, &hello(), &welcome());
    assert_eq!((words.as_str(), p.backoff.as_millis()), ("hello/1.1", 400));
}

#[test]
fn a_replay_session_that_drops_without_an_error_keeps_every_event_and_the_backoff_doubles_until_the_echo() {
    let mut p = Plugin::new(Config { deadline: Duration::from_secs(5), ..Config::default() });
    p.handle_exit(&sea(0));
    p.handle_exit(&sea(0));
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (r, daemon, words, _) = session(&mut p, &hello(), &welcome());
        assert!(r.is_ok());
        drop(daemon); // end of file, no ERROR
        assert!(p.poll(Duration::from_secs(5)).is_err());
        seen.push((words, p.kept(), p.stats().replays_refused, p.backoff.as_millis()));
    }
    let words = "hello/1.1 sea1r sea2r hb".to_string();
    assert_eq!(seen, vec![(words.clone(), 2, 0, 100), (words.clone(), 2, 0, 200)]);
    // The echo comes: the replays are stored and forgotten, the backoff starts over.
    let (_, mut daemon, again, nonce) = session(&mut p, &hello(), &welcome());
    assert_eq!((again, p.backoff.as_millis()), (words, 200));
    daemon.write_all(&wire::encode_heartbeat(nonce)).unwrap();
    assert_eq!(p.poll(Duration::from_secs(5)).unwrap(), 1);
    assert_eq!((p.kept(), p.backoff), (0, Plugin::RECONNECT_MIN));
}

#[test]
fn a_replay_session_ended_by_an_error_drops_at_most_one_replay_counting_the_one_the_bound_pushed_out() {
    // A deadline of 0: every exit falls back and is kept, sent or not.
    let mut p = Plugin::new(Config { deadline: Duration::ZERO, max_kept: 4, ..Config::default() });
    for _ in 0..4 {
        p.handle_exit(&sea(0)); // never connected: seqs 1 to 4, the bound reached
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (r, mut daemon, words, _) = session(&mut p, &hello(), &welcome());
        assert!(r.is_ok());
        if seen.is_empty() {
            // A live exit decided late while the echo is awaited: the bound pushes out seq 1.
            assert_eq!(p.handle_exit(&sea(0)).source, Source::Fallback);
            assert_eq!(sent(&mut daemon).0, "sea5");
        }
        daemon.write_all(&error(wire::ERR_BAD_FIELD)).unwrap();
        drop(daemon);
        assert!(p.poll(Duration::from_secs(5)).is_err());
        seen.push((words, p.kept(), p.stats().kept_dropped, p.stats().replays_refused));
    }
    // The daemon refused seq 1 and stored nothing after it: seq 2 stays for the next session,
    // which drops its oldest replay as usual.
    let want: Vec<_> = [
        ("hello/1.1 sea1r sea2r sea3r sea4r hb", 4, 1, 0),
        ("hello/1.1 sea2r sea3r sea4r sea5r hb", 3, 1, 1),
        ("hello/1.1 sea3r sea4r sea5r hb", 2, 1, 2),
    ]
    .into_iter()
    .map(|(w, k, d, r)| (w.to_string(), k, d, r))
    .collect();
    assert_eq!(seen, want);
}

#[test]
fn an_echo_of_the_replays_read_while_looking_for_the_error_behind_a_failed_write_acknowledges_them() {
    let mut p = Plugin::new(Config { deadline: Duration::from_secs(5), ..Config::default() });
    for _ in 0..3 {
        p.handle_exit(&sea(0)); // never connected: seqs 1, 2, 3 kept
    }
    let (_, daemon, words, _) = session(&mut p, &hello(), &welcome());
    drop(daemon); // before the echo: the backoff doubles
    assert!(p.poll(Duration::from_secs(5)).is_err());
    assert_eq!((words.as_str(), p.kept(), p.backoff.as_millis()), ("hello/1.1 sea1r sea2r sea3r hb", 3, 100));
    // The daemon stores the replays, echoes their HEARTBEAT, then ends the session with an ERROR
    // for a reason of its own; the plugin's next write fails with both still unread.
    let (_, mut daemon, _, nonce) = session(&mut p, &hello(), &welcome());
    daemon.write_all(&wire::encode_heartbeat(nonce)).unwrap();
    daemon.write_all(&error(wire::ERR_BAD_FIELD)).unwrap();
    drop(daemon);
    assert!(p.send_applied(1, 0).is_err());
    // Nothing kept, nothing refused, and the backoff started over before the loss doubled it.
    assert_eq!((p.kept(), p.stats().replays_refused, p.backoff.as_millis()), (0, 0, 100));
    let (_, _daemon, words, _) = session(&mut p, &hello(), &welcome());
    assert_eq!((words.as_str(), p.backoff.as_millis()), ("hello/1.1", 100));
}

/// A RESUME VERDICT frame for `seq`.
fn resume(seq: u32) -> Vec<u8> {
    let mut verdict = vec![88, 0, 0, 0, wire::MSG_VERDICT as u8, 0, 0, 0];
    verdict.extend_from_slice(&seq.to_le_bytes());
    verdict.resize(HEADER_SIZE + 88, 0);
    verdict
}

#[test]
fn after_a_refusal_only_the_retry_asks_for_the_lower_minor() {
    // Over a socket path: the refusal and its retry are one connect. The daemon here refuses the
    // first HELLO with ERROR BAD_FIELD, as a 1.0 daemon does, then welcomes the version asked for.
    struct RemoveDir(std::path::PathBuf); // removed however the test ends
    impl Drop for RemoveDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let dir = RemoveDir(std::env::temp_dir().join(format!("seawall-rust-minor-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let path = dir.0.join("plugin.sock");
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let daemon = std::thread::spawn(move || {
        let mut asked = Vec::new();
        for n in 0..3 {
            let (mut s, _) = listener.accept().unwrap();
            let mut hello = [0u8; HEADER_SIZE + 4];
            s.read_exact(&mut hello).unwrap();
            let minor = wire::get_u16(&hello, HEADER_SIZE + 2) as u8;
            asked.push(minor);
            s.write_all(&if n == 0 { error(wire::ERR_BAD_FIELD) } else { welcome_minor(minor) }).unwrap();
        }
        asked
    });
    let mut p = Plugin::new(Config::default());
    assert_eq!(p.connect(&path, &hello()).expect("the retry in 1.0").minor, 0);
    p.close(wire::goodbye::NORMAL);
    assert_eq!(p.connect(&path, &hello()).expect("1.1 again").minor, 1);
    p.close(wire::goodbye::NORMAL);
    let asked = daemon.join().unwrap();
    assert_eq!(asked, vec![1, 0, 1], "refused 1.1, the retry in 1.0, then 1.1 again");

    // Over a stream the caller opens, the retry is the next call.
    let mut p = Plugin::new(Config::default());
    let (r, _d, words, _) = session(&mut p, &hello(), &error(wire::ERR_BAD_FIELD));
    assert!(matches!(r, Err(Error::Refused { code: wire::ERR_BAD_FIELD, .. })) && words == "hello/1.1");
    let (r, _d, words, _) = session(&mut p, &hello(), &welcome_minor(0));
    assert_eq!((r.expect("1.0").minor, words.as_str()), (0, "hello/1.0"));
    let (r, _d, words, _) = session(&mut p, &hello(), &welcome());
    assert_eq!((r.expect("1.1").minor, words.as_str()), (1, "hello/1.1"));
}

#[path = "plugin_check_tests.rs"]
mod checks;

#[path = "plugin_backoff_tests.rs"]
mod backoff;

#[path = "plugin_late_tests.rs"]
mod late;
