//! Unit tests of the checks `plugin.rs` makes before it sends or replays an event (docs/protocol.md
//! §9, point 7): what a daemon would refuse is answered by the fallback, neither sent nor kept; and
//! of the check of an INJECT verdict's image (§5.1, verdict_checks.rs). The helpers (a session on
//! a socket pair, what the plugin sent) are those of plugin_tests.rs.

use super::*;

#[test]
fn an_event_the_daemon_would_refuse_is_answered_by_the_fallback_never_sent_and_never_kept() {
    let mut p = Plugin::new(Config { deadline: Duration::from_secs(5), ..Config::default() });
    let two = Hello { vcpu_count: 2, ..hello() };
    let (r, mut daemon, words, _) = session(&mut p, &two, &welcome());
    assert_eq!((r.is_ok(), words.as_str()), (true, "hello/1.1"));
    let state = |p: &Plugin, d: &mut UnixStream| (sent(d).0, p.stats().invalid_events, p.kept());

    // vcpu_count is 2: vCPU 2 is past it. Never written, answered by the fallback, not kept.
    let v = p.handle_exit(&sea(2));
    assert_eq!((v.source, v.action), (Source::Fallback, Action::Inject));
    assert_eq!(state(&p, &mut daemon), ("-".into(), 1, 0));
    // 1.1: an AO names no vCPU; and no daemon takes a si_code other than AR or AO.
    p.handle_exit(&Exit::Sigbus { vcpu: Some(0), si_code: 5, addr_lsb: 12, gpa: None });
    p.handle_exit(&Exit::Sigbus { vcpu: None, si_code: 3, addr_lsb: 12, gpa: None });
    assert_eq!(state(&p, &mut daemon), ("-".into(), 3, 0));
    // vCPU 1 is fine: sent, and answered by the daemon (its verdict is already waiting: seq 4).
    let mut verdict = vec![88, 0, 0, 0, wire::MSG_VERDICT as u8, 0, 0, 0, 4];
    verdict.resize(HEADER_SIZE + 88, 0);
    daemon.write_all(&verdict).unwrap();
    assert_eq!(p.handle_exit(&sea(1)).source, Source::Daemon);
    assert_eq!(state(&p, &mut daemon), ("sea4".into(), 3, 0));

    // Not connected: the vCPU count of the last HELLO still holds; the 1.1 checks wait for a session.
    drop(daemon);
    p.close(wire::goodbye::NORMAL);
    assert_eq!(p.handle_exit(&sea(7)).source, Source::Fallback);
    assert_eq!((p.stats().invalid_events, p.kept()), (4, 0));
    p.handle_exit(&Exit::Mmio { vcpu: 0, phys_addr: 0x800_0000, data: [0; 8], len: 3, is_write: false });
    p.handle_exit(&Exit::Sigbus { vcpu: None, si_code: 4, addr_lsb: 12, gpa: None });
    p.handle_exit(&sea(0));
    assert_eq!((p.stats().invalid_events, p.kept()), (4, 3));

    // The 1.1 session drops the MMIO of length 3 and the AR without a vCPU; only the SEA is replayed.
    let (_, _daemon, words, _) = session(&mut p, &two, &welcome());
    assert_eq!((words.as_str(), p.stats().invalid_events, p.kept()), ("hello/1.1 sea8r hb", 6, 1));
}

#[test]
fn an_event_whose_capability_the_hello_did_not_declare_is_neither_sent_nor_replayed_in_1_1() {
    // caps 3 lacks NISV_TO_USER: a 1.1 daemon refuses an NISV, live or replayed (§4.4); caps 2 lacks
    // SEA_TO_USER as well, and a 1.1 daemon refuses a SEA from it alike.
    let nisv = Exit::Nisv { vcpu: 0, esr_iss: 0x7, fault_ipa: 0x800_0000 };
    let mut p = Plugin::new(Config { deadline: Duration::from_secs(5), ..Config::default() });
    let (r, mut daemon, words, _) = session(&mut p, &hello(), &welcome());
    assert_eq!((r.is_ok(), words.as_str()), (true, "hello/1.1"));
    let v = p.handle_exit(&nisv);
    assert_eq!((v.source, v.action), (Source::Fallback, Action::Inject));
    assert_eq!((sent(&mut daemon).0, p.stats().invalid_events, p.kept()), ("-".into(), 1, 0));

    // Kept while not connected (1.0 does not check it), dropped before the 1.1 replay.
    drop(daemon);
    p.close(wire::goodbye::NORMAL);
    p.handle_exit(&nisv);
    p.handle_exit(&sea(0));
    assert_eq!((p.stats().invalid_events, p.kept()), (1, 2));
    let (_, daemon, words, _) = session(&mut p, &hello(), &welcome());
    assert_eq!((words.as_str(), p.stats().invalid_events, p.kept()), ("hello/1.1 sea3r hb", 2, 1));
    assert_eq!(p.stats().replays_refused, 0);

    // caps 2 lacks SEA_TO_USER: both kept SEAs (3, and 5 kept while not connected) are dropped before
    // the 1.1 replay, and a live one is answered by the fallback, never sent.
    let no_sea = Hello { caps: 2, ..hello() };
    drop(daemon);
    p.close(wire::goodbye::NORMAL);
    p.handle_exit(&sea(0));
    assert_eq!((p.stats().invalid_events, p.kept()), (2, 2));
    let (_, mut daemon, words, _) = session(&mut p, &no_sea, &welcome());
    assert_eq!((words.as_str(), p.stats().invalid_events, p.kept()), ("hello/1.1", 4, 0));
    let v = p.handle_exit(&sea(0));
    assert_eq!((v.source, v.action), (Source::Fallback, Action::Inject));
    assert_eq!((sent(&mut daemon).0, p.stats().invalid_events, p.kept()), ("-".into(), 5, 0));
    assert_eq!(p.stats().replays_refused, 0);

    // A 1.0 session does not check the capabilities: the NISV and the SEA are sent, the daemon answers.
    let mut old = Plugin::new(Config { deadline: Duration::from_secs(5), minor: 0, ..Config::default() });
    let (r, mut daemon, words, _) = session(&mut old, &no_sea, &welcome_minor(0));
    assert_eq!((r.is_ok(), words.as_str()), (true, "hello/1.0"));
    for (seq, exit) in [(1, nisv), (2, sea(0))] {
        let mut verdict = vec![88, 0, 0, 0, wire::MSG_VERDICT as u8, 0, 0, 0, seq];
        verdict.resize(HEADER_SIZE + 88, 0);
        daemon.write_all(&verdict).unwrap();
        assert_eq!(old.handle_exit(&exit).source, Source::Daemon);
    }
    assert_eq!((sent(&mut daemon).0, old.stats().invalid_events), ("nisv1 sea2".into(), 0));
}

#[test]
fn an_inject_image_with_a_reserved_byte_set_is_a_protocol_error_whose_exit_is_replayed_after_the_reconnect() {
    let mut p = Plugin::new(Config { deadline: Duration::from_secs(5), ..Config::default() });
    let (r, mut daemon, _, _) = session(&mut p, &hello(), &welcome());
    assert!(r.is_ok());
    // The merged data abort, with reserved byte 40 set: KVM would be handed an image it misreads.
    let mut verdict = resume(p.next_seq);
    verdict[HEADER_SIZE + 4] = Action::Inject.code();
    verdict[HEADER_SIZE + 24 + 2] = 1;
    verdict[HEADER_SIZE + 24 + 40] = 7;
    daemon.write_all(&verdict).unwrap();
    let v = p.handle_exit(&sea(0));
    assert_eq!((v.source, v.vcpu_events[40]), (Source::Fallback, 0), "the fallback, not the image");
    assert_eq!((p.connected(), p.stats().refused_verdicts, p.kept()), (false, 1, 1));
    assert_eq!(sent(&mut daemon).0, "sea1");
    assert!(p.reconnect_at.is_some(), "the reconnect is scheduled");
    // The reconnect replays the exit the fallback answered.
    let (_, _daemon, words, _) = session(&mut p, &hello(), &welcome());
    assert_eq!(words, "hello/1.1 sea1r hb");
}
