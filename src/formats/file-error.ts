// Every error met while reading a file names that file (docs/security.md): a parser deep inside
// (a DataView past the end of a truncated .bin, JSON.parse of a damaged trainer_state.json) does
// not know which file it reads, so the function that opened it adds the path.

/** `err` with `path` in front of its message, unless the message already names it. The same object. */
export function naming<E>(path: string, err: E): E {
  if (err instanceof Error && !err.message.includes(path)) err.message = `${path}: ${err.message}`;
  return err;
}

/** Runs `read` and names `path` in whatever it throws. */
export async function readingFile<T>(path: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (err) {
    throw naming(path, err);
  }
}
