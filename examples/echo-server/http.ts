/** The HTTP/1.1 side of the demo: find where a request head ends, and choose its fixed answer. */

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
/** A head longer than the server reads. */
export const TOO_LARGE: Answer = { bytes: response('431 Request Header Fields Too Large', true, '', false), close: true };
/** The demo reads no request bodies: one would be taken for the next request. */
const HAS_BODY: Answer = { bytes: response('501 Not Implemented', true, '', false), close: true };

/** Room a connection needs for any one answer. */
export const MAX_ANSWER = Math.max(TOO_LARGE.bytes.length, HAS_BODY.bytes.length, ...OK.map((a) => a.bytes.length));

const CR = 13;
const LF = 10;

/**
 * The length of the request head at the start of `buf[at .. at + length)`, up to and with its
 * blank line, or -1 if it is not all there yet. The first `searched` bytes were searched
 * before: only a blank line that ends in a later byte is looked for.
 */
export function headLength(buf: Uint8Array, at: number, length: number, searched: number): number {
  for (let i = at + Math.max(searched, 3); i < at + length; i++) {
    if (buf[i] === LF && buf[i - 1] === CR && buf[i - 2] === LF && buf[i - 3] === CR) return i + 1 - at;
  }
  return -1;
}

/** The answer to one request head (latin1 text, blank line included). */
export function answer(head: string): Answer {
  if (/\r\n(?:content-length:[ \t]*0*[1-9]|transfer-encoding:)/i.test(head)) return HAS_BODY;
  const http10 = /^[^\r\n]* HTTP\/1\.0\r\n/.test(head);
  const connection = /\r\nconnection:([^\r\n]*)/i.exec(head)?.[1] ?? '';
  const close = /\bclose\b/i.test(connection) || (http10 && !/\bkeep-alive\b/i.test(connection));
  return OK[(close ? 2 : 0) + (head.startsWith('HEAD ') ? 1 : 0)]!;
}
