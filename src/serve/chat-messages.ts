// OpenAI's chat `messages`, checked once into a conversation: an optional "system" message first,
// then "user" and "assistant" alternating, starting and ending with "user". Every error names the
// message and field at fault (messages[2].role, messages[1].content).
import type { Conversation } from '../data/conversation.ts';
import { BadRequestError, RequestFields } from './request-fields.ts';

const ROLES = ['system', 'user', 'assistant'] as const;
type Role = (typeof ROLES)[number];
/** Newer OpenAI clients send the system instructions as role "developer": the same message here. */
const ALIASES: Readonly<Record<string, Role>> = { developer: 'system' };

/** A message's text: a non-empty string, or an array of {"type": "text", "text"} parts joined by "\n". */
function content(m: RequestFields, at: string): string {
  const v = m.raw('content');
  let text: string;
  if (Array.isArray(v)) {
    text = v
      .map((part, j) => {
        const p = RequestFields.of(part);
        const type = p.raw('type');
        if (type !== 'text') {
          throw new BadRequestError(
            `${at}.content[${j}].type`,
            `only "text" parts are supported, got ${JSON.stringify(type)}`,
          );
        }
        const t = p.raw('text');
        if (typeof t !== 'string')
          throw new BadRequestError(`${at}.content[${j}].text`, 'a text part needs a "text" string');
        p.done();
        return t;
      })
      .join('\n');
  } else if (typeof v === 'string') text = v;
  else
    throw new BadRequestError(
      `${at}.content`,
      `${at}.content must be a non-empty string (or an array of text parts), got ${JSON.stringify(v ?? null)}`,
    );
  if (text.trim() === '')
    throw new BadRequestError(
      `${at}.content`,
      `${at}.content must be a non-empty string, got ${JSON.stringify(text)}`,
    );
  return text;
}

function role(m: RequestFields, at: string): Role {
  const r = m.raw('role');
  const alias = typeof r === 'string' && Object.hasOwn(ALIASES, r) ? ALIASES[r] : undefined;
  if (alias !== undefined) return alias;
  if (!ROLES.includes(r as Role)) {
    throw new BadRequestError(
      `${at}.role`,
      `${at}.role must be "developer" (taken as "system"), "system", "user" or "assistant", got ${JSON.stringify(r ?? null)}`,
    );
  }
  return r as Role;
}

/** The role message i must have, given the one before (undefined: it is the first). */
function expected(previous: Role | undefined): readonly Role[] {
  if (previous === undefined) return ['system', 'user'];
  return previous === 'user' ? ['assistant'] : ['user'];
}

export function parseChatMessages(raw: unknown): Conversation {
  if (!Array.isArray(raw) || raw.length === 0) {
    throw new BadRequestError('messages', 'messages must be a non-empty array');
  }
  let system: string | null = null;
  const messages: string[] = [];
  let previous: Role | undefined;
  for (const [i, message] of raw.entries()) {
    const at = `messages[${i}]`;
    if (typeof message !== 'object' || message === null || Array.isArray(message))
      throw new BadRequestError(at, `${at} must be an object with "role" and "content"`);
    const m = RequestFields.of(message);
    const r = role(m, at);
    const allowed = expected(previous);
    if (!allowed.includes(r)) {
      const why =
        r === 'system'
          ? 'a "system" message may only come first'
          : `expected ${allowed.map((a) => JSON.stringify(a)).join(' or ')} ${previous === undefined ? 'first' : `after ${previous === 'assistant' ? 'an' : 'a'} "${previous}" message`}: user and assistant messages alternate, starting with "user"`;
      throw new BadRequestError(`${at}.role`, `${at}.role is "${r}": ${why}`);
    }
    const text = content(m, at);
    m.raw('name'); // OpenAI's participant name: accepted, not part of the prompt
    m.done();
    if (r === 'system') system = text;
    else messages.push(text);
    previous = r;
  }
  if (previous !== 'user') {
    const at = `messages[${raw.length - 1}]`;
    throw new BadRequestError(
      `${at}.role`,
      `${at}.role is "${previous}": the conversation must end with a "user" message, which the answer responds to`,
    );
  }
  return { system, messages };
}
