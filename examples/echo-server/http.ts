/**
 * The HTTP/1.1 side of the demo: where a request head ends, a strict parse of it (RFC 9112)
 * into an HttpRequest for the responder, and the fixed answers.
 */

const BODY = 'ok\n';

function response(status: string, close: boolean, body: string, head: boolean): Uint8Array {
  const lines = [
    `HTTP/1.1 ${status}`,
    'Content-Type: text/plain',
    `Content-Length: ${body.length}`,
    `Connection: ${close ? 'close' : 'keep-alive'}`,
  ];
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n${head ? '' : body}`, 'latin1');
}

/** The answer to a request, and whether the connection closes after it. */
export interface Answer {
  readonly bytes: Uint8Array;
  readonly close: boolean;
}

const OK: readonly Answer[] = [false, true].flatMap((close) =>
  [false, true].map((head) => ({ bytes: response('200 OK', close, BODY, head), close })),
);

/** The refusals, by status; each closes the connection. */
const REFUSALS: ReadonlyMap<number, Answer> = new Map(
  [
    '400 Bad Request', // what parseHead refuses
    '408 Request Timeout', // a head not complete within the header timeout of its first byte
    '431 Request Header Fields Too Large', // a head longer than the server reads
    '501 Not Implemented', // a Transfer-Encoding
    '505 HTTP Version Not Supported',
  ].map((status) => [Number.parseInt(status, 10), { bytes: response(status, true, '', false), close: true }]),
);

/** Room a connection needs for any one answer. */
export const MAX_ANSWER = Math.max(...[...REFUSALS.values(), ...OK].map((a) => a.bytes.length));

const HTAB = 9;
const LF = 10;
const CR = 13;
const SP = 32;
const COLON = 58;
const DOT = 46;

/** Byte classes of RFC 9110 §5.6.2 and §5.5. */
const TCHAR = 1;
/** Visible ASCII: request-target bytes. */
const VCHAR = 2;
/** What a field value may hold: VCHAR, obs-text, SP and HTAB. */
const FIELD = 4;
const CLASS = new Uint8Array(256);
for (let b = 0x21; b <= 0x7e; b++) CLASS[b] = VCHAR | FIELD;
for (let b = 0x80; b <= 0xff; b++) CLASS[b] = FIELD;
CLASS[SP] = CLASS[HTAB] = FIELD;
for (const ch of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") CLASS[ch.charCodeAt(0)]! |= TCHAR;

/** `headLength` for a head that has a bare LF (RFC 9112 §2.2: lines end in CRLF). */
export const MALFORMED = -2;

/**
 * The length of the request head at the start of `buf[at .. at + length)`, up to and with its
 * blank line; -1 if it is not all there yet; MALFORMED at a line ended by LF alone. The first
 * `searched` bytes were searched before: only what ends in a later byte is looked at.
 */
export function headLength(buf: Uint8Array, at: number, length: number, searched: number): number {
  for (let i = at + searched; i < at + length; i++) {
    if (buf[i] !== LF) continue;
    if (i === at || buf[i - 1] !== CR) return MALFORMED;
    // Every LF before this one was checked to follow a CR: LF here means CRLF CRLF.
    if (i - at >= 3 && buf[i - 2] === LF) return i + 1 - at;
  }
  return -1;
}

/** A parsed request head, the one thing the responder is given; one per thread, reused. */
export class HttpRequest {
  method = '';
  target = '';
  /** The minor version: HTTP/1.0 or HTTP/1.1 (and up, read as 1.1). */
  minor = 1;
  /** Field names and values as received, name then value, like node:http's rawHeaders. */
  readonly headers: string[] = [];
  /** Bytes of body after the head. */
  contentLength = 0;
  /** The connection closes after the answer: `Connection: close`, or HTTP/1.0 without keep-alive. */
  close = false;
}

/** `parseHead`'s results besides an HTTP status code. */
export const PARSED = 0;
/** Nothing but empty lines, which a server ignores before a request line (RFC 9112 §2.2). */
export const BLANK = 1;

/** Whether `buf[start .. end)` is `lower` in any case; `lower` is lowercase letters and '-'. */
function nameIs(buf: Uint8Array, start: number, end: number, lower: string): boolean {
  if (end - start !== lower.length) return false;
  // Field names are tokens, which hold no byte that `| 0x20` turns into a letter or '-' but the letter's own case.
  for (let i = 0; i < lower.length; i++) if ((buf[start + i]! | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}

const CLOSE = /(?:^|,)[ \t]*close[ \t]*(?:,|$)/i;
const KEEP_ALIVE = /(?:^|,)[ \t]*keep-alive[ \t]*(?:,|$)/i;
/** request-target forms other than origin-form (RFC 9112 §3.2): absolute-form starts with a scheme. */
const ABSOLUTE_FORM = /^[A-Za-z][A-Za-z0-9+.-]*:/;

/**
 * Parses the request head `buf[start .. end)`, as `headLength` found it (ending in CRLF CRLF,
 * no bare LF), into `req`. Returns PARSED, BLANK, or the status to refuse it with: 400 for
 * anything that is not RFC 9112 syntax (obs-fold, whitespace before a colon, a control
 * character, a bad Content-Length or Host, Content-Length with Transfer-Encoding), 501 for a
 * Transfer-Encoding (no transfer coding is implemented), 505 for an HTTP major version not 1.
 */
export function parseHead(buf: Buffer, start: number, end: number, req: HttpRequest): number {
  let i = start;
  while (buf[i] === CR && buf[i + 1] === LF) i += 2;
  if (i === end) return BLANK;

  // request-line = method SP request-target SP HTTP-version CRLF
  const methodAt = i;
  while (CLASS[buf[i]!]! & TCHAR) i++;
  if (i === methodAt || buf[i] !== SP) return 400;
  const targetAt = ++i;
  while (CLASS[buf[i]!]! & VCHAR) i++;
  if (i === targetAt || buf[i] !== SP) return 400;
  const methodEnd = targetAt - 1;
  const targetEnd = i++;
  // HTTP-version = "HTTP/" DIGIT "." DIGIT
  if (!isAt(buf, i, 'HTTP/') || !isDigit(buf[i + 5]!) || buf[i + 6] !== DOT || !isDigit(buf[i + 7]!)) return 400;
  if (buf[i + 8] !== CR || buf[i + 9] !== LF) return 400;
  if (buf[i + 5] !== 0x31) return 505;
  req.minor = Math.min(buf[i + 7]! - 0x30, 1); // a higher 1.x is served as 1.1 (RFC 9110 §2.5)
  i += 10;
  req.method = intern(buf, methodAt, methodEnd, METHODS);
  req.target = buf.toString('latin1', targetAt, targetEnd);
  if (!targetFits(req.method, req.target)) return 400;

  // field-line = field-name ":" OWS field-value OWS CRLF
  // Fields go in by index, and the length is cut once at the end: setting an array's length is
  // a call into the runtime, and cutting it to 0 frees the room the next request fills again.
  const headers = req.headers;
  let fields = 0;
  let hosts = 0;
  let contentLength = -1;
  let chunked = false;
  let close = false;
  let keepAlive = false;
  while (buf[i] !== CR) {
    const nameAt = i;
    while (CLASS[buf[i]!]! & TCHAR) i++;
    // Also refuses obs-fold (a line that starts with SP or HTAB) and whitespace before the colon.
    if (i === nameAt || buf[i] !== COLON) return 400;
    const nameEnd = i++;
    while (buf[i] === SP || buf[i] === HTAB) i++;
    const valueAt = i;
    let valueEnd = i;
    for (; CLASS[buf[i]!]! & FIELD; i++) if (buf[i] !== SP && buf[i] !== HTAB) valueEnd = i + 1;
    if (buf[i] !== CR || buf[i + 1] !== LF) return 400; // a control character, or a bare CR
    i += 2;
    const value = buf.toString('latin1', valueAt, valueEnd);
    headers[fields++] = intern(buf, nameAt, nameEnd, FIELD_NAMES);
    headers[fields++] = value;
    if (nameIs(buf, nameAt, nameEnd, 'content-length')) {
      // One field with one value (RFC 9112 §6.3): a list, even of equal values, is refused.
      if (contentLength !== -1 || !/^\d{1,15}$/.test(value)) return 400;
      contentLength = Number(value);
    } else if (nameIs(buf, nameAt, nameEnd, 'transfer-encoding')) {
      chunked = true;
    } else if (nameIs(buf, nameAt, nameEnd, 'host')) {
      hosts++;
    } else if (nameIs(buf, nameAt, nameEnd, 'connection')) {
      close ||= CLOSE.test(value);
      keepAlive ||= KEEP_ALIVE.test(value);
    }
  }
  if (headers.length !== fields) headers.length = fields;
  if (buf[i + 1] !== LF || i + 2 !== end) return 400;
  // RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host, any request at most one.
  if (hosts > 1 || (hosts === 0 && req.minor === 1)) return 400;
  if (chunked) return contentLength !== -1 || req.minor === 0 ? 400 : 501; // RFC 9112 §6.1
  req.contentLength = Math.max(contentLength, 0);
  req.close = close || (req.minor === 0 && !keepAlive);
  return PARSED;
}

/** Methods and field names most requests have, spelt as clients send them: found, not allocated. */
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS'];
const FIELD_NAMES = ['Host', 'User-Agent', 'Accept', 'Accept-Encoding', 'Accept-Language', 'Connection', 'Content-Length', 'Content-Type', 'host', 'user-agent', 'accept', 'connection', 'content-length', 'content-type'];

/** `buf[start .. end)` as a string: one of `known` if it is one. */
function intern(buf: Buffer, start: number, end: number, known: readonly string[]): string {
  for (const s of known) if (s.length === end - start && isAt(buf, start, s)) return s;
  return buf.toString('latin1', start, end);
}

/** Whether `buf` holds `ascii` at `at`. */
function isAt(buf: Uint8Array, at: number, ascii: string): boolean {
  for (let i = 0; i < ascii.length; i++) if (buf[at + i] !== ascii.charCodeAt(i)) return false;
  return true;
}

function isDigit(b: number): boolean {
  return b >= 0x30 && b <= 0x39;
}

/** Whether the request-target has a form its method allows (RFC 9112 §3.2). */
function targetFits(method: string, target: string): boolean {
  if (target.charCodeAt(0) === 0x2f) return method !== 'CONNECT'; // origin-form: "/" ...
  if (method === 'CONNECT') return true; // authority-form: host:port
  if (target === '*') return method === 'OPTIONS'; // asterisk-form
  return ABSOLUTE_FORM.test(target);
}

/** The responder: the answer to a parsed request. */
export function answer(req: HttpRequest): Answer {
  return OK[(req.close ? 2 : 0) + (req.method === 'HEAD' ? 1 : 0)]!;
}

/** The answer that refuses a request with `status`: 400, 408, 431, 501 or 505. */
export function refuse(status: number): Answer {
  return REFUSALS.get(status)!;
}
