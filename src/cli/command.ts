// What every `lora-mpt` sub-command is: a name, one line for the command list, and a run function
// that takes the remaining argv and resolves to a process exit code.

export interface Command {
  readonly name: string;
  readonly summary: string;
  run(argv: readonly string[]): Promise<number>;
}
