/**
 * The man page, generated from the command tree (cli/program.ts) as roff for man(7): NAME,
 * SYNOPSIS, DESCRIPTION, one subsection per command with its arguments and options, the socket
 * search order, the environment, exit status and files. scripts/man.mjs writes docs/seawall.1;
 * a test regenerates it and compares, so the page cannot drift from the parser.
 */
import type { Argument, Command, Option } from 'commander';
import { EXIT_STATUS_TEXT, walkCommands } from './program.js';

/**
 * The typography the descriptions use, as roff's own characters: man(1) shows them as they are in
 * a UTF-8 locale and as ASCII under LANG=C, where the raw characters were dropped ("FILE…" read
 * "FILE").
 */
const ROFF_CHARS: Record<string, string> = {
  '…': '.\\|.\\|.',
  '’': '\\(cq',
  '‘': '\\(oq',
  '—': '\\(em',
  '–': '\\(en',
};

/** Escapes text for roff: backslashes, leading dots and quotes, hyphens in options, typography. */
function roff(text: string): string {
  return text
    .replaceAll('\\', '\\e')
    .replaceAll('-', '\\-')
    .replace(/[…’‘—–]/g, (c) => ROFF_CHARS[c] as string)
    .split('\n')
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join('\n');
}

function argText(a: Argument): string {
  const name = `${a.name()}${a.variadic ? '…' : ''}`;
  return a.required ? name.toUpperCase() : `[${name.toUpperCase()}]`;
}

function optionItem(o: Option): string {
  const extra: string[] = [];
  if (o.argChoices) extra.push(`one of: ${o.argChoices.join(', ')}`);
  if (o.defaultValue !== undefined && o.defaultValue !== false && typeof o.defaultValue !== 'object')
    // As --help shows it: a default given in the option's own terms (a duration) over its value.
    extra.push(`default: ${o.defaultValueDescription ?? String(o.defaultValue)}`);
  if (o.mandatory) extra.push('required');
  return `.TP\n.B ${roff(o.flags)}\n${roff(o.description)}${extra.length ? ` (${roff(extra.join('; '))})` : ''}`;
}

function synopsis(path: string[], c: Command): string {
  const args = c.registeredArguments.map(argText).join(' ');
  const opts = c.options.length > 0 ? ' [OPTIONS]' : '';
  return `seawall ${path.join(' ')}${opts}${args ? ` ${args}` : ''}`;
}

/** The page for `root` as roff; `date` is the version's date line (kept fixed for reproducibility). */
export function manPage(root: Command, version: string): string {
  const leaves = walkCommands(root).filter((c) => c.path.length > 0 && c.command.commands.length === 0);
  const lines: string[] = [
    `.TH SEAWALL 1 "" "seawall ${roff(version)}" "User Commands"`,
    '.SH NAME',
    // "seawall \- handles memory errors …": the description's first clause, less its own name.
    `seawall \\- ${roff((root.description().split(':')[0] ?? '').replace(/^seawall /, ''))}`,
    '.SH SYNOPSIS',
    ...leaves.map(({ path, command }) => `.B ${roff(synopsis(path, command))}\n.br`),
    '.SH DESCRIPTION',
    roff(root.description()),
    '.SH COMMANDS',
  ];
  for (const { path, command } of leaves) {
    lines.push(`.SS ${roff(`seawall ${path.join(' ')}`)}`, roff(command.description()));
    for (const a of command.registeredArguments)
      lines.push(`.TP\n.I ${roff(argText(a))}\n${roff(a.description)}`);
    for (const o of command.options) lines.push(optionItem(o));
  }
  lines.push(
    '.SH GLOBAL OPTIONS',
    '.TP\n.B \\-V, \\-\\-version\nprint the version',
    '.TP\n.B \\-h, \\-\\-help\nshow help for the command it follows',
    '.SH FINDING THE DAEMON',
    roff(
      'The commands that ask the daemon (status, vms, events, poison, why, reload) use the first of: ' +
        '--control-socket; $SEAWALL_CONTROL_SOCKET; /run/seawall/control.sock (the systemd socket unit); ' +
        '$XDG_RUNTIME_DIR/seawall/control.sock, else /tmp/seawall-UID/control.sock (a daemon run by hand). ' +
        'simulate finds the plugin socket the same way (--socket, $SEAWALL_SOCKET, plugin.sock).',
    ),
    '.SH ENVIRONMENT',
    '.TP\n.B SEAWALL_CONTROL_SOCKET\nthe control socket, when no \\-\\-control\\-socket is given',
    '.TP\n.B SEAWALL_SOCKET\nthe plugin socket simulate drives, when no \\-\\-socket is given',
    '.TP\n.B XDG_RUNTIME_DIR, XDG_STATE_HOME\nwhere a daemon run by hand keeps its sockets and its store',
    '.SH EXIT STATUS',
    ...EXIT_STATUS_TEXT.split('\n')
      .slice(1)
      .map((l) => {
        const [code, ...rest] = l.trim().split(/\s+/);
        return `.TP\n.B ${code}\n${roff(rest.join(' '))}`;
      }),
    '.SH FILES',
    '.TP\n.I /etc/seawall/seawall.yaml\nthe configuration the systemd unit starts the daemon with',
    '.TP\n.I /var/lib/seawall/events.sqlite\nthe event store',
    '.TP\n.I /run/seawall/plugin.sock, /run/seawall/control.sock\nthe sockets of the systemd socket units',
    '.SH SEE ALSO',
    'systemd.service(5), journalctl(1); /usr/share/doc/seawall/ (operations.md, policies.md, metrics.md)',
  );
  return `${lines.join('\n')}\n`;
}
