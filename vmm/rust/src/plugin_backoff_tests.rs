//! Unit tests of when the reconnect backoff starts over (docs/protocol.md §9, point 5): only once a
//! session proves useful, never at a WELCOME alone. The helpers (a session on a socket pair, the
//! wait a loss scheduled) are those of plugin_tests.rs.

use super::*;

#[test]
fn a_daemon_that_ends_every_session_right_after_welcome_is_reconnected_to_ever_more_slowly() {
    let mut p = Plugin::new(Config { deadline: Duration::from_secs(5), ..Config::default() });
    // Nothing to replay, so no echo to wait for: each loss schedules the reconnect twice as far off.
    let lose = |p: &mut Plugin, daemon: UnixStream| {
        drop(daemon);
        let before = Instant::now();
        assert!(p.poll(Duration::from_secs(5)).is_err() && !p.connected());
        (before, Instant::now())
    };
    for ms in [50, 100, 200, 400, 800, 1600, 2000, 2000] {
        let (r, daemon, words, _) = session(&mut p, &hello(), &welcome());
        assert_eq!((r.is_ok(), words.as_str()), (true, "hello/1.1"));
        let (before, after) = lose(&mut p, daemon);
        assert!(waited(&p, before, after, Duration::from_millis(ms)), "session lost after WELCOME: {ms} ms");
    }
    // A VERDICT applied proves the session: the backoff starts over.
    let (_, mut daemon, _, _) = session(&mut p, &hello(), &welcome());
    daemon.write_all(&resume(p.next_seq)).unwrap();
    assert_eq!(p.handle_exit(&sea(0)).source, Source::Daemon);
    let (before, after) = lose(&mut p, daemon);
    assert!(waited(&p, before, after, Plugin::RECONNECT_MIN), "lost after a verdict");
    // So does a session up as long as the backoff's bound (its WELCOME moved back that far).
    let (_, daemon, _, _) = session(&mut p, &hello(), &welcome());
    assert_eq!(p.backoff.as_millis(), 100);
    p.session_at =
        Instant::now().checked_sub(Plugin::RECONNECT_MAX).expect("a monotonic clock that far back");
    let (before, after) = lose(&mut p, daemon);
    assert!(waited(&p, before, after, Plugin::RECONNECT_MIN), "lost after the bound");
}
