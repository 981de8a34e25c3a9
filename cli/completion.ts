/**
 * Bash completion generated from the command tree (cli/program.ts): subcommand names, each
 * command's options, the choices of options that have them, and file names for options and
 * arguments that take a path. `seawall completion bash` prints it; install.sh installs it.
 */
import type { Command, Option } from 'commander';
import { walkCommands } from './program.js';

/** Options and arguments whose value is a path complete file names. */
const PATHLIKE = /^<(file|path|dir)/;

function valueWords(o: Option): string | null {
  if (o.argChoices && o.argChoices.length > 0) return o.argChoices.join(' ');
  return null;
}

const quote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

/** The bash completion script for `root`, for a command installed as `name`. */
export function bashCompletion(root: Command, name = 'seawall'): string {
  const fn = `_${name.replace(/[^A-Za-z0-9_]/g, '_')}_complete`;
  const cases: string[] = [];
  for (const { path, command } of walkCommands(root)) {
    const key = path.join(' ');
    const subs = command.commands.map((c) => c.name());
    const options = command.options.flatMap((o) => [o.long, o.short]).filter((x): x is string => !!x);
    const words = [...subs, ...options, '--help'].join(' ');
    const valueCases: string[] = [];
    const pathOpts: string[] = [];
    for (const o of command.options) {
      if (!o.long || !(o.required || o.optional)) continue;
      const choices = valueWords(o);
      if (choices)
        valueCases.push(
          `        ${o.long}) COMPREPLY=($(compgen -W ${quote(choices)} -- "$cur")); return ;;`,
        );
      else if (PATHLIKE.test(o.flags.split(' ').pop() ?? '')) pathOpts.push(o.long);
      else valueCases.push(`        ${o.long}) return ;;`);
    }
    if (pathOpts.length > 0)
      valueCases.push(`        ${pathOpts.join('|')}) COMPREPLY=($(compgen -f -- "$cur")); return ;;`);
    const fileArgs = command.registeredArguments.some((a) => /file/.test(a.name()));
    cases.push(
      [
        `    ${quote(key)})`,
        ...(valueCases.length > 0 ? ['      case "$prev" in', ...valueCases, '      esac'] : []),
        `      COMPREPLY=($(compgen -W ${quote(words)} -- "$cur"))`,
        ...(fileArgs ? ['      [[ "$cur" != -* ]] && COMPREPLY+=($(compgen -f -- "$cur"))'] : []),
        '      ;;',
      ].join('\n'),
    );
  }
  const known = walkCommands(root)
    .filter((c) => c.command.commands.length > 0)
    .map((c) => c.path.join(' '));
  return `# bash completion for ${name}, generated from its command definitions (${name} completion bash).
${fn}() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}"
  local path="" word i
  # The command path so far: the words before the cursor that name subcommands.
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    [[ "$word" == -* ]] && continue
    case "$path" in
${known.map((k) => `      ${quote(k)}) ;;`).join('\n')}
      *) continue ;;
    esac
    case " $(${fn}_subs "$path") " in
      *" $word "*) path="\${path:+$path }$word" ;;
    esac
  done
  case "$path" in
${cases.join('\n')}
  esac
}
${fn}_subs() {
  case "$1" in
${walkCommands(root)
  .filter((c) => c.command.commands.length > 0)
  .map(
    (c) =>
      `    ${quote(c.path.join(' '))}) echo ${quote(c.command.commands.map((s) => s.name()).join(' '))} ;;`,
  )
  .join('\n')}
  esac
}
complete -F ${fn} ${name}
`;
}
