//! Unit tests of what `plugin.rs` does when the daemon answers after the deadline: a late KILL is
//! handed to the `on_late_kill` hook, since the daemon enforces it all the same (docs/protocol.md
//! §5.1, §9 rule 4); and vCPUs queued on one `Mutex` behind an exit that missed its deadline get
//! the fallback at once until the daemon answers again. The helpers are those of plugin_tests.rs.

use super::*;
use std::sync::{Arc, Mutex};

/// A VERDICT frame for `seq` with `action` and `grace_ms`.
fn verdict(seq: u32, action: Action, grace_ms: u32) -> Vec<u8> {
    let mut f = vec![88, 0, 0, 0, wire::MSG_VERDICT as u8, 0, 0, 0];
    f.extend_from_slice(&seq.to_le_bytes());
    f.extend_from_slice(&[action.code(), 0, 0, 0]);
    f.extend_from_slice(&grace_ms.to_le_bytes());
    f.resize(HEADER_SIZE + 88, 0);
    f
}

/// The APPLIED frames the daemon's end holds now, as (seq, action, source).
fn applied(daemon: &mut UnixStream) -> Vec<(u32, u8, u8)> {
    let buf = available(daemon);
    let (mut out, mut o) = (Vec::new(), 0);
    while o + HEADER_SIZE <= buf.len() {
        let (len, kind, b) = (wire::get_u32(&buf, o) as usize, wire::get_u16(&buf, o + 4), o + HEADER_SIZE);
        if kind == wire::MSG_APPLIED && len == 16 {
            out.push((wire::get_u32(&buf, b), buf[b + 8], buf[b + 9]));
        }
        o = b + len;
    }
    out
}

#[test]
fn a_late_kill_reaches_the_hook_wherever_it_is_read_and_1_1_still_says_the_vcpu_got_the_fallback() {
    let mut p = Plugin::new(Config { deadline: Duration::from_millis(50), ..Config::default() });
    let seen: Arc<Mutex<Vec<(u32, Action, u32, Source)>>> = Arc::default();
    let log = Arc::clone(&seen);
    p.on_late_kill(move |v| log.lock().unwrap().push((v.seq, v.action, v.grace_ms, v.source)));
    let (r, mut daemon, _, _) = session(&mut p, &hello(), &welcome());
    r.expect("WELCOME");
    let kills = |seen: &Arc<Mutex<Vec<_>>>| seen.lock().unwrap().clone();

    // Read by poll: handed on, and the daemon told the vCPU got the fallback INJECT.
    assert_eq!(p.handle_exit(&sea(0)).source, Source::Fallback);
    daemon.write_all(&verdict(1, Action::Kill, 1500)).unwrap();
    assert_eq!(p.poll(Duration::from_secs(1)).unwrap(), 1);
    assert_eq!(kills(&seen), [(1, Action::Kill, 1500, Source::Daemon)]);
    assert_eq!(applied(&mut daemon), [(1, 1, wire::APPLIED_FALLBACK)]);

    // Read by the next exit, which still gets its own verdict.
    assert_eq!(p.handle_exit(&sea(0)).source, Source::Fallback);
    daemon.write_all(&[verdict(2, Action::Kill, 700), verdict(3, Action::Resume, 0)].concat()).unwrap();
    let v = p.handle_exit(&sea(0));
    assert_eq!((v.seq, v.source, v.action), (3, Source::Daemon, Action::Resume));
    assert_eq!(kills(&seen)[1..], [(2, Action::Kill, 700, Source::Daemon)]);
    assert_eq!(applied(&mut daemon), [(2, 1, wire::APPLIED_FALLBACK)]);

    // A late verdict of another action is no kill.
    p.handle_exit(&sea(0));
    daemon.write_all(&verdict(4, Action::Resume, 0)).unwrap();
    assert_eq!(p.poll(Duration::from_secs(1)).unwrap(), 1);
    assert_eq!((kills(&seen).len(), p.stats().late_verdicts, p.stats().late_kills), (2, 3, 2));

    // Read behind the end of the session: the next exit's write finds the daemon gone.
    p.handle_exit(&sea(0));
    daemon.write_all(&[wire::encode_heartbeat(0), verdict(5, Action::Kill, 300)].concat()).unwrap();
    drop(daemon);
    assert_eq!(p.handle_exit(&sea(0)).source, Source::Fallback);
    assert!(!p.connected());
    assert_eq!(kills(&seen)[2..], [(5, Action::Kill, 300, Source::Daemon)]);

    // Read while closing.
    let (r, mut daemon, _, _) = session(&mut p, &hello(), &welcome());
    r.expect("WELCOME");
    let seq = p.handle_exit(&sea(0)).seq;
    daemon.write_all(&[verdict(seq, Action::Kill, 0), wire::encode_goodbye(0)].concat()).unwrap();
    p.close(wire::goodbye::NORMAL);
    assert_eq!(kills(&seen)[3..], [(seq, Action::Kill, 0, Source::Daemon)]);
    assert_eq!(p.stats().late_kills, 4);
}

#[test]
fn behind_one_mutex_a_frozen_daemon_makes_one_exit_wait_its_deadline_and_the_queued_ones_get_the_fallback_at_once(
) {
    let mut p = Plugin::new(Config { deadline: Duration::from_millis(300), ..Config::default() });
    let four = Hello { vcpu_count: 4, ..hello() };
    let (r, mut daemon, _, _) = session(&mut p, &four, &welcome());
    r.expect("WELCOME");
    let plugin = Arc::new(Mutex::new(p));
    let vcpus: Vec<_> = (0..4)
        .map(|i| {
            let plugin = Arc::clone(&plugin);
            std::thread::spawn(move || plugin.lock().unwrap().handle_exit(&sea(i)).source)
        })
        .collect();
    for v in vcpus {
        assert_eq!(v.join().unwrap(), Source::Fallback);
    }
    let mut p = Arc::try_unwrap(plugin).ok().unwrap().into_inner().unwrap();
    // One waited its deadline; the three queued behind it were answered at once, and their events
    // still went out for the daemon to decide.
    assert_eq!((p.stats().stalled_fallbacks, p.connected()), (3, true));
    assert_eq!(sent(&mut daemon).0, "sea1 sea2 sea3 sea4");
    assert_eq!(p.handle_exit(&sea(0)).source, Source::Fallback); // still frozen: at once too
    assert_eq!(p.stats().stalled_fallbacks, 4);

    // The late verdict for seq 1 ends the stall: the next exit waits for, and gets, its verdict.
    daemon.write_all(&[verdict(1, Action::Resume, 0), verdict(6, Action::Resume, 0)].concat()).unwrap();
    assert_eq!(p.handle_exit(&sea(0)).source, Source::Daemon);
    // Stalled again by an exit that misses its deadline; a HEARTBEAT echo ends that stall too.
    assert_eq!(p.handle_exit(&sea(0)).source, Source::Fallback);
    daemon.write_all(&[wire::encode_heartbeat(0), verdict(8, Action::Resume, 0)].concat()).unwrap();
    assert_eq!(p.handle_exit(&sea(0)).source, Source::Daemon);
    assert_eq!(p.stats().stalled_fallbacks, 4);
}
