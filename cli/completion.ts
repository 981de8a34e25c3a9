/**
 * Bash completion generated from the command tree (cli/program.ts): subcommand names, each
 * command's options, the choices of options that have them, and file names for options and
 * arguments that take a path. `seawall completion bash` prints it; install.sh installs it.
 * Every reply is read a line a word (mapfile), never split or glob-expanded by the shell: a file
 * named 'my policy.yaml' or '*' is offered as it is, and file names are offered with
 * `compopt -o filenames`, which quotes them and gives directories their '/'.
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

/** Sets COMPREPLY to the words of `list` that start with the word at the cursor. */
const words = (list: string) => `mapfile -t COMPREPLY < <(compgen -W ${quote(list)} -- "$cur")`;
/** Sets COMPREPLY to the file names that start with it (compopt fails outside completion). */
const FILES = 'compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -f -- "$cur")';
/** Adds those file names to COMPREPLY. */
const MORE_FILES =
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash expansion, not a template
  'compopt -o filenames 2>/dev/null; mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -f -- "$cur")';

/** The bash completion script for `root`, for a command installed as `name`. */
export function bashCompletion(root: Command, name = 'seawall'): string {
  const fn = `_${name.replace(/[^A-Za-z0-9_]/g, '_')}_complete`;
  const cases: string[] = [];
  for (const { path, command } of walkCommands(root)) {
    const key = path.join(' ');
    const subs = command.commands.map((c) => c.name());
    const options = command.options.flatMap((o) => [o.long, o.short]).filter((x): x is string => !!x);
    const argChoices = command.registeredArguments.flatMap((a) => a.argChoices ?? []);
    const help = subs.length > 0 ? ['help'] : [];
    const all = [...subs, ...help, ...argChoices, ...options, '--help'].join(' ');
    const valueCases: string[] = [];
    const pathOpts: string[] = [];
    for (const o of command.options) {
      if (!o.long || !(o.required || o.optional)) continue;
      const choices = valueWords(o);
      if (choices) valueCases.push(`        ${o.long}) ${words(choices)}; return ;;`);
      else if (PATHLIKE.test(o.flags.split(' ').pop() ?? '')) pathOpts.push(o.long);
      else valueCases.push(`        ${o.long}) return ;;`);
    }
    if (pathOpts.length > 0) valueCases.push(`        ${pathOpts.join('|')}) ${FILES}; return ;;`);
    // `seawall help <TAB>`, `seawall policy help <TAB>`: the commands help can be asked about.
    if (subs.length > 0) valueCases.push(`        help) ${words(subs.join(' '))}; return ;;`);
    const fileArgs = command.registeredArguments.some((a) => /file/.test(a.name()));
    cases.push(
      [
        `    ${quote(key)})`,
        ...(valueCases.length > 0 ? ['      case "$prev" in', ...valueCases, '      esac'] : []),
        `      ${words(all)}`,
        ...(fileArgs ? [`      [[ "$cur" != -* ]] && { ${MORE_FILES}; }`] : []),
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
