/**
 * IP literals and `struct sockaddr_in` / `struct sockaddr_in6`, per OS, as small pure functions
 * over bytes: no system call here, so every layout can be tested on any machine.
 */
import { ReactorError } from '../core/errors.js';

/** An IPv4 or IPv6 address in network byte order. */
export interface IpAddress {
  readonly family: 4 | 6;
  /** 4 bytes for IPv4, 16 for IPv6. */
  readonly bytes: Uint8Array;
  /** The IPv6 zone (interface index) of a link-local address; 0 otherwise. */
  readonly scopeId: number;
}

/** How one OS lays out the start of a sockaddr, and its address family numbers. */
export interface SockaddrLayout {
  /**
   * true on the BSD family (macOS, FreeBSD, OpenBSD, NetBSD): `u8 sin_len` at 0, `u8 sin_family`
   * at 1. false on Linux and Windows: `u16 sin_family` at 0, in host byte order.
   */
  readonly lengthByte: boolean;
  readonly AF_INET: number;
  readonly AF_INET6: number;
}

/** Linux: glibc `bits/socket.h` (`PF_INET6 10`), `netinet/in.h`; linux `include/linux/socket.h`. */
export const LINUX_SOCKADDR: SockaddrLayout = { lengthByte: false, AF_INET: 2, AF_INET6: 10 };
/** macOS: xnu `bsd/sys/socket.h` (`AF_INET6 30`), `bsd/netinet/in.h`, `bsd/netinet6/in6.h`. */
export const MACOS_SOCKADDR: SockaddrLayout = { lengthByte: true, AF_INET: 2, AF_INET6: 30 };
/** FreeBSD: `sys/sys/socket.h` (`AF_INET6 28`), `sys/netinet/in.h`, `sys/netinet6/in6.h`. */
export const FREEBSD_SOCKADDR: SockaddrLayout = { lengthByte: true, AF_INET: 2, AF_INET6: 28 };
/** OpenBSD and NetBSD: `sys/sys/socket.h` (`AF_INET6 24` on both). */
export const OPENBSD_SOCKADDR: SockaddrLayout = { lengthByte: true, AF_INET: 2, AF_INET6: 24 };
export const NETBSD_SOCKADDR: SockaddrLayout = OPENBSD_SOCKADDR;
/** Windows, for the Winsock twin: `ws2def.h` (`AF_INET6 23`), `u16 sin_family` like Linux. */
export const WINDOWS_SOCKADDR: SockaddrLayout = { lengthByte: false, AF_INET: 2, AF_INET6: 23 };

// struct sockaddr_in (16 bytes) and struct sockaddr_in6 (28 bytes): the same offsets on every OS
// above; checked with offsetof() against glibc and against the BSD headers' field order.
export const SOCKADDR_IN_SIZE = 16;
export const SOCKADDR_IN6_SIZE = 28;
/** Big enough for either, and for the `sockaddr_storage` a getsockname may fill (128 bytes). */
export const SOCKADDR_STORAGE_SIZE = 128;
const SIN_PORT = 2; // in_port_t, big-endian, in both structs
const SIN_ADDR = 4; // struct in_addr
const SIN6_FLOWINFO = 4;
const SIN6_ADDR = 8; // struct in6_addr
const SIN6_SCOPE_ID = 24;

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The hosts `listen` and `connect` accept by name. */
const NAMED_HOSTS: ReadonlyMap<string, string> = new Map([['localhost', '127.0.0.1']]);

/**
 * Parses an IPv4 or IPv6 literal ('127.0.0.1', '::1', 'fe80::1%2'), or 'localhost' (127.0.0.1).
 * No name resolution: anything else is EINVAL.
 *
 * @example
 * parseHost('::1'); // { family: 6, bytes: Uint8Array(16) [0, ..., 1], scopeId: 0 }
 */
export function parseHost(host: string): IpAddress {
  if (typeof host !== 'string') {
    throw new ReactorError('EINVAL', `host must be a string such as '127.0.0.1' or '::1', got ${String(host)}`);
  }
  const literal = NAMED_HOSTS.get(host.toLowerCase()) ?? host;
  const parsed = literal.includes(':') ? parseIPv6(literal) : parseIPv4(literal);
  if (parsed === undefined) {
    throw new ReactorError(
      'EINVAL',
      `host ${JSON.stringify(host)} is not an IP literal: pass an IPv4 or IPv6 address such as '127.0.0.1' or '::1', or 'localhost' (names are not resolved)`,
    );
  }
  return parsed;
}

/** Dotted quad, four decimal numbers 0-255 without leading zeros (which some libcs read as octal). */
function parseIPv4(s: string): IpAddress | undefined {
  const bytes = ipv4Bytes(s);
  return bytes === undefined ? undefined : { family: 4, bytes, scopeId: 0 };
}

function ipv4Bytes(s: string): Uint8Array | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i]!;
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return undefined;
    const value = Number(part);
    if (value > 255) return undefined;
    bytes[i] = value;
  }
  return bytes;
}

/** RFC 4291 text forms: eight groups, one `::`, an embedded IPv4 tail, a numeric `%zone`. */
function parseIPv6(s: string): IpAddress | undefined {
  let scopeId = 0;
  const percent = s.indexOf('%');
  if (percent !== -1) {
    const zone = s.slice(percent + 1);
    if (!/^(0|[1-9][0-9]{0,9})$/.test(zone) || Number(zone) > 0xffffffff) return undefined;
    scopeId = Number(zone);
    s = s.slice(0, percent);
  }
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const head = groups(halves[0]!, halves.length === 1);
  const tail = halves.length === 2 ? groups(halves[1]!, true) : [];
  if (head === undefined || tail === undefined) return undefined;
  const count = head.length + tail.length;
  if (halves.length === 1 ? count !== 8 : count > 7) return undefined;
  const bytes = new Uint8Array(16);
  const put = (g: number, at: number): void => {
    bytes[at * 2] = g >>> 8;
    bytes[at * 2 + 1] = g & 0xff;
  };
  head.forEach((g, i) => put(g, i));
  tail.forEach((g, i) => put(g, 8 - tail.length + i));
  return { family: 6, bytes, scopeId };
}

/** The 16-bit groups of one side of `::`; an IPv4 tail, if allowed here, counts as two. */
function groups(side: string, mayEndInIPv4: boolean): number[] | undefined {
  if (side === '') return [];
  const parts = side.split(':');
  const out: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (mayEndInIPv4 && i === parts.length - 1 && part.includes('.')) {
      const v4 = ipv4Bytes(part);
      if (v4 === undefined) return undefined;
      out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    } else if (/^[0-9a-fA-F]{1,4}$/.test(part)) {
      out.push(parseInt(part, 16));
    } else {
      return undefined;
    }
  }
  return out;
}

/**
 * Writes a sockaddr_in or sockaddr_in6 for `address` and `port` at the start of `out` (zeroed
 * first) in `layout`'s form; returns its length, the `socklen_t` to pass with it.
 *
 * @example
 * const len = encodeSockaddr(LINUX_SOCKADDR, parseHost('127.0.0.1'), 8080, buf); // 16
 */
export function encodeSockaddr(layout: SockaddrLayout, address: IpAddress, port: number, out: Uint8Array): number {
  const size = address.family === 4 ? SOCKADDR_IN_SIZE : SOCKADDR_IN6_SIZE;
  if (out.length < size) throw new ReactorError('EINVAL', `a sockaddr needs ${size} bytes, the buffer has ${out.length}`);
  out.fill(0, 0, size);
  const view = new DataView(out.buffer, out.byteOffset, size);
  const family = address.family === 4 ? layout.AF_INET : layout.AF_INET6;
  if (layout.lengthByte) {
    view.setUint8(0, size);
    view.setUint8(1, family);
  } else {
    view.setUint16(0, family, littleEndian);
  }
  view.setUint16(SIN_PORT, port, false);
  if (address.family === 4) {
    out.set(address.bytes, SIN_ADDR);
  } else {
    view.setUint32(SIN6_FLOWINFO, 0, false);
    out.set(address.bytes, SIN6_ADDR);
    view.setUint32(SIN6_SCOPE_ID, address.scopeId, littleEndian);
  }
  return size;
}

/** A decoded sockaddr_in or sockaddr_in6. */
export interface SocketAddress extends IpAddress {
  readonly port: number;
}

/**
 * Reads the sockaddr at the start of `buf` in `layout`'s form; undefined if it is neither
 * AF_INET nor AF_INET6 (a Unix-domain socket, say).
 *
 * @example
 * decodeSockaddr(LINUX_SOCKADDR, buf)?.port; // 8080
 */
export function decodeSockaddr(layout: SockaddrLayout, buf: Uint8Array): SocketAddress | undefined {
  if (buf.length < SOCKADDR_IN_SIZE) return undefined;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.length);
  const family = layout.lengthByte ? view.getUint8(1) : view.getUint16(0, littleEndian);
  const port = view.getUint16(SIN_PORT, false);
  if (family === layout.AF_INET) {
    return { family: 4, bytes: buf.slice(SIN_ADDR, SIN_ADDR + 4), scopeId: 0, port };
  }
  if (family === layout.AF_INET6 && buf.length >= SOCKADDR_IN6_SIZE) {
    const scopeId = view.getUint32(SIN6_SCOPE_ID, littleEndian);
    return { family: 6, bytes: buf.slice(SIN6_ADDR, SIN6_ADDR + 16), scopeId, port };
  }
  return undefined;
}

/**
 * The text form of an address: dotted quad, or RFC 5952 IPv6 (lower case, the longest run of
 * two or more zero groups as `::`), with `%zone` when it has one.
 *
 * @example
 * formatIp(parseHost('0:0:0:0:0:0:0:1')); // '::1'
 */
export function formatIp(address: IpAddress): string {
  const b = address.bytes;
  if (address.family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[i * 2]! << 8) | b[i * 2 + 1]!);
  let bestAt = -1;
  let bestLen = 1; // a single zero group is written as 0, not ::
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number): string => g.slice(from, to).map((x) => x.toString(16)).join(':');
  const text = bestAt === -1 ? hex(0, 8) : `${hex(0, bestAt)}::${hex(bestAt + bestLen, 8)}`;
  return address.scopeId === 0 ? text : `${text}%${address.scopeId}`;
}
