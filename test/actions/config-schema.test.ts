/**
 * An HTTP hook's headers are checked when the config is read: a name that is not an RFC 9110
 * token or a value with CR, LF or NUL would otherwise pass and make every run of the hook fail.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ActionsConfigSchema } from '../../actions/config-schema.js';

const withHeaders = (headers: Record<string, string>) =>
  ActionsConfigSchema.safeParse({ hooks: { orch: { type: 'http', url: 'http://127.0.0.1:1/', headers } } });

test('header names must be tokens and values must hold no CR, LF, NUL or control character', () => {
  const rejected: [Record<string, string>, RegExp][] = [
    [{ 'bad name': 'a' }, /is not a header name/],
    [{ 'X-A:': 'a' }, /is not a header name/],
    [{ '': 'a' }, /is not a header name/],
    [{ 'X-A': 'a\r\nX-Injected: 1' }, /a header value/],
    [{ 'X-A': 'a\nb' }, /a header value/],
    [{ 'X-A': 'a\0b' }, /a header value/],
    [{ 'X-A': 'a\u0100' }, /a header value/],
  ];
  for (const [headers, message] of rejected) {
    const r = withHeaders(headers);
    assert.equal(r.success, false, `${JSON.stringify(headers)} is rejected`);
    const issue = r.error?.issues[0];
    assert.match(issue?.message ?? '', message, JSON.stringify(headers));
    assert.deepEqual(issue?.path.slice(0, 3), ['hooks', 'orch', 'headers']);
    // What the schema refuses, the hook's fetch would refuse on every run.
    assert.throws(() => new Headers(headers), JSON.stringify(headers));
  }
});

test('ordinary headers are kept as written', () => {
  const headers = { Authorization: 'Bearer abc.def', "X-Trace_id.1!#$%&'*+^`|~": 'a\tb \u00e9' };
  const r = withHeaders(headers);
  assert.ok(r.success, JSON.stringify(r.error?.issues));
  const hook = r.data.hooks.orch;
  assert.equal(hook?.type, 'http');
  assert.deepEqual(hook?.type === 'http' ? hook.headers : null, headers);
  assert.doesNotThrow(() => new Headers(headers));
});
