/**
 * The Rust crate's own `cargo test` (vmm/rust), unit tests and the integration tests that talk to
 * a real daemon: one is started here on a private socket and handed over in SEAWALL_SOCKET.
 * Offline: the crate has no dependencies, and nothing is downloaded.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { removeDir, startDaemon } from '../helpers/daemon.js';
import { cargoPath, RUST_DIR } from './conformance/drivers.js';

const run = promisify(execFile);

test('cargo test passes against a real daemon, every daemon-backed test included', async (t) => {
  const cargo = cargoPath(t);
  if (!cargo) return;
  const d = await startDaemon({ metrics: false });
  t.after(async () => {
    await d.stop();
    removeDir(d.dir);
  });
  const { stdout, stderr } = await run(cargo, ['test', '--offline', '--', '--test-threads=1'], {
    cwd: RUST_DIR,
    env: { ...process.env, SEAWALL_SOCKET: d.socket },
    timeout: 170_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  assert.doesNotMatch(stderr, /SEAWALL_SOCKET is not set/);
  for (const name of [
    'a_sea_exit_gets_the_daemons_injection_in_1_1_and_in_1_0',
    'every_exit_kind_is_answered',
    'a_second_session_for_a_held_vm_id_is_refused_without_naming_the_holder',
    'no_daemon_means_the_configured_fallback_at_once',
    'a_listener_with_a_full_backlog_fails_the_connect_at_once',
    'an_fd_that_is_no_vcpu_is_refused_in_every_session_and_exits_still_get_the_daemons_verdicts',
    'plugin::attach::tests::close_forgets_the_registered_vcpus_so_no_later_session_sends_their_fds',
    'an_attach_socket_that_is_not_there_is_counted_and_exits_still_get_the_daemons_verdicts',
    'attach_wire::tests::the_default_socket_is_derived_as_the_daemon_derives_it',
    'scm::tests::a_message_sent_with_an_fd_arrives_whole_with_a_copy_of_the_fd',
    'plugin::attach::tests::the_attach_socket_is_derived_from_connects_path_named_by_the_vmm_and_none_after_connect_stream',
    'plugin::attach::tests::attach_vcpu_checks_the_index_waits_for_a_session_and_counts_a_missing_socket',
    'plugin::tests::checks::an_event_the_daemon_would_refuse_is_answered_by_the_fallback_never_sent_and_never_kept',
    'plugin::tests::checks::an_event_whose_capability_the_hello_did_not_declare_is_neither_sent_nor_replayed_in_1_1',
    'plugin::tests::replay_sessions_ended_by_an_error_drain_the_kept_events_one_each_and_the_backoff_doubles',
    'plugin::tests::a_replay_session_that_drops_without_an_error_keeps_every_event_and_the_backoff_doubles_until_the_echo',
    'plugin::tests::after_a_refusal_only_the_retry_asks_for_the_lower_minor',
    'plugin::tests::a_replay_session_ended_by_an_error_drops_at_most_one_replay_counting_the_one_the_bound_pushed_out',
    'plugin::tests::an_echo_of_the_replays_read_while_looking_for_the_error_behind_a_failed_write_acknowledges_them',
    'plugin::tests::late::a_late_kill_reaches_the_hook_wherever_it_is_read_and_1_1_still_says_the_vcpu_got_the_fallback',
    'plugin::tests::late::behind_one_mutex_a_frozen_daemon_makes_one_exit_wait_its_deadline_and_the_queued_ones_get_the_fallback_at_once',
    'a_non_blocking_stream_is_made_blocking_and_its_session_gets_the_daemons_verdict',
    'a_hello_larger_than_the_send_buffer_of_a_non_blocking_stream_waits_for_the_daemon_to_read_it',
  ]) {
    assert.match(stdout, new RegExp(`^test ${name} \\.\\.\\. ok$`, 'm'), name);
  }
  assert.doesNotMatch(stdout, /test result: FAILED/);
});
