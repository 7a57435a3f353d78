// What every `lora-mpt` sub-command is: a name, one line for the command list, and a run function
// that takes the remaining argv and resolves to a process exit code. `flagCommand` builds one from
// its flags: `--help` explains every flag, anything else is parsed and handed to `run`.
import { type FlagSpecs, helpText, type ParsedFlags, parseFlags } from './flags.ts';

export interface Command {
  readonly name: string;
  readonly summary: string;
  /** The flags it takes (what --help lists), for tools and tests that check every command. */
  readonly flags?: FlagSpecs;
  run(argv: readonly string[]): Promise<number>;
}

export function flagCommand<F extends FlagSpecs>(o: {
  readonly name: string;
  readonly summary: string;
  /** The usage line, e.g. `lora-mpt eval --base_model DIR [flags]`. */
  readonly usage: string;
  /** What the command does, in a sentence or two (defaults to the summary). */
  readonly description?: string;
  readonly flags: F;
  run(flags: ParsedFlags<F>): Promise<number>;
}): Command {
  return {
    name: o.name,
    summary: o.summary,
    flags: o.flags,
    run(argv) {
      if (argv.includes('--help') || argv.includes('-h')) {
        console.log(helpText(o.usage, o.description ?? o.summary, o.flags));
        return Promise.resolve(0);
      }
      return o.run(parseFlags(o.flags, argv));
    },
  };
}
