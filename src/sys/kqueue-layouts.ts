/**
 * `struct kevent` layouts and kqueue constants per OS, as data, with the header each comes from,
 * plus small pure encoders and decoders over a `DataView`. Every profile is for the 64-bit
 * (LP64) ABI: amd64 and arm64 lay these structs out the same way.
 */

/** One field of `struct kevent`: where it starts, how wide it is, and whether it is signed. */
export interface KeventField {
  readonly offset: number;
  readonly width: 2 | 4 | 8;
  readonly signed: boolean;
}

/** The `ext[]` array some systems append (FreeBSD ≥ 12, NetBSD ≥ 11); zeroed on input. */
export interface KeventExt {
  readonly offset: number;
  readonly count: number;
}

/** The constants this project uses, as `<sys/event.h>` defines them. */
export interface KqueueConstants {
  readonly EVFILT_READ: number;
  readonly EVFILT_WRITE: number;
  readonly EVFILT_USER: number;
  readonly EV_ADD: number;
  readonly EV_DELETE: number;
  readonly EV_ENABLE: number;
  readonly EV_DISABLE: number;
  readonly EV_ONESHOT: number;
  readonly EV_CLEAR: number;
  readonly EV_RECEIPT: number;
  readonly EV_DISPATCH: number;
  readonly EV_EOF: number;
  readonly EV_ERROR: number;
  readonly NOTE_LOWAT: number;
  readonly NOTE_TRIGGER: number;
  readonly NOTE_FFNOP: number;
  readonly NOTE_FFAND: number;
  readonly NOTE_FFOR: number;
  readonly NOTE_FFCOPY: number;
  readonly NOTE_FFCTRLMASK: number;
  readonly NOTE_FFLAGSMASK: number;
}

/** Which system a profile describes. */
export type KqueueOs = 'freebsd' | 'macos' | 'openbsd' | 'netbsd10' | 'netbsd11' | 'libkqueue';

/** Everything needed to call one system's `kevent()` through an FFI. */
export interface KeventProfile {
  readonly os: KqueueOs;
  /** The header the numbers come from. */
  readonly header: string;
  /** The oldest release this layout and these constants hold for. */
  readonly since: string;
  /** `sizeof(struct kevent)`: the stride of the changelist and the eventlist. */
  readonly size: number;
  readonly ident: KeventField;
  readonly filter: KeventField;
  readonly flags: KeventField;
  readonly fflags: KeventField;
  readonly data: KeventField;
  readonly udata: KeventField;
  readonly ext: KeventExt | null;
  /** The C symbol that takes this layout (NetBSD renames `kevent` in its header). */
  readonly symbol: string;
  /** The C type of `nchanges` and `nevents` in that symbol's prototype. */
  readonly countType: 'int' | 'size_t';
  readonly constants: KqueueConstants;
}

// Flags shared, with the same values, by every header below.
const EV_ADD = 0x0001;
const EV_DELETE = 0x0002;
const EV_ENABLE = 0x0004;
const EV_DISABLE = 0x0008;
const EV_ONESHOT = 0x0010;
const EV_CLEAR = 0x0020;
const EV_RECEIPT = 0x0040;
const EV_DISPATCH = 0x0080;
const EV_EOF = 0x8000;
const EV_ERROR = 0x4000;
const NOTE_LOWAT = 0x0001;
const NOTE_TRIGGER = 0x01000000;
const NOTE_FFNOP = 0x00000000;
const NOTE_FFAND = 0x40000000;
const NOTE_FFOR = 0x80000000;
const NOTE_FFCOPY = 0xc0000000;
const NOTE_FFCTRLMASK = 0xc0000000;
const NOTE_FFLAGSMASK = 0x00ffffff;

/** The constants with the FreeBSD filter numbering (negative filters), given the EVFILT_USER value. */
function negativeFilters(evfiltUser: number): KqueueConstants {
  return {
    EVFILT_READ: -1,
    EVFILT_WRITE: -2,
    EVFILT_USER: evfiltUser,
    EV_ADD, EV_DELETE, EV_ENABLE, EV_DISABLE, EV_ONESHOT, EV_CLEAR, EV_RECEIPT, EV_DISPATCH,
    EV_EOF, EV_ERROR, NOTE_LOWAT, NOTE_TRIGGER,
    NOTE_FFNOP, NOTE_FFAND, NOTE_FFOR, NOTE_FFCOPY, NOTE_FFCTRLMASK, NOTE_FFLAGSMASK,
  };
}

/**
 * The 32-byte layout every system but NetBSD started from:
 * `uintptr_t ident; short filter; unsigned short flags; unsigned int fflags;
 *  intptr_t/int64_t data; void *udata;` (8 + 2 + 2 + 4 + 8 + 8).
 */
const IDENT_U64: KeventField = { offset: 0, width: 8, signed: false };
const CLASSIC_32 = {
  size: 32,
  ident: IDENT_U64,
  filter: { offset: 8, width: 2, signed: true },
  flags: { offset: 10, width: 2, signed: false },
  fflags: { offset: 12, width: 4, signed: false },
  data: { offset: 16, width: 8, signed: true },
  udata: { offset: 24, width: 8, signed: false },
  ext: null,
  symbol: 'kevent',
  countType: 'int',
} as const satisfies Partial<KeventProfile>;

/**
 * FreeBSD 12.0 and later, sys/sys/event.h (freebsd/freebsd-src):
 * `__uintptr_t ident; short filter; unsigned short flags; unsigned int fflags;
 *  __int64_t data; void *udata; __uint64_t ext[4];` = 64 bytes. The 32-byte layout of 11.x and
 * older survives only as `struct kevent_freebsd11` behind the `kevent@FBSD_1.0` compat symbol.
 * `EVFILT_USER (-11)`, `EV_RECEIPT 0x0040`, `EV_DISPATCH 0x0080`, `NOTE_TRIGGER 0x01000000`.
 * (The same header also has `EV_FORCEONESHOT 0x0100`, unused here: see docs/ARCHITECTURE.md on FORCEOS.)
 */
export const FREEBSD: KeventProfile = {
  ...CLASSIC_32,
  os: 'freebsd',
  header: 'FreeBSD sys/sys/event.h (struct kevent with ext[4], FreeBSD >= 12.0)',
  since: 'FreeBSD 12.0',
  size: 64,
  ext: { offset: 32, count: 4 },
  constants: negativeFilters(-11),
};

/**
 * macOS, xnu bsd/sys/event.h (apple-oss-distributions/xnu): struct kevent is declared inside
 * `#pragma pack(4)`: `uintptr_t ident; int16_t filter; uint16_t flags; uint32_t fflags;
 * intptr_t data; void *udata;` = 32 bytes on 64-bit (every member already falls on a 4-byte
 * boundary, so the packing changes nothing there). `EVFILT_USER (-10)`.
 */
export const MACOS: KeventProfile = {
  ...CLASSIC_32,
  os: 'macos',
  header: 'xnu bsd/sys/event.h (struct kevent inside #pragma pack(4))',
  since: 'macOS (current xnu header)',
  constants: negativeFilters(-10),
};

/**
 * OpenBSD, sys/sys/event.h rev 1.74 (2025/05/10, openbsd/src): `__uintptr_t ident; short filter;
 * unsigned short flags; unsigned int fflags; __int64_t data; void *udata;` = 32 bytes.
 * `EVFILT_USER (-10)` first appears in that revision (the EVFILT_USER commit of May 2025, after
 * OpenBSD 7.7 was released), so releases before it have no user filter: the backend's open
 * fails there with EINVAL from the EVFILT_USER registration.
 */
export const OPENBSD: KeventProfile = {
  ...CLASSIC_32,
  os: 'openbsd',
  header: 'OpenBSD sys/sys/event.h rev 1.74 (2025/05/10)',
  since: 'OpenBSD 7.8 (inferred: the first release after the EVFILT_USER commit)',
  constants: negativeFilters(-10),
};

/** NetBSD's filter numbering: positive, from 0 (`EVFILT_READ 0U` ... `EVFILT_USER 8U`). */
const NETBSD_CONSTANTS: KqueueConstants = {
  ...negativeFilters(8),
  EVFILT_READ: 0,
  EVFILT_WRITE: 1,
};

/**
 * NetBSD 6.0 to 10.x, sys/sys/event.h rev 1.54 (2022/07/19, NetBSD/src): `uintptr_t ident;
 * uint32_t filter; uint32_t flags; uint32_t fflags; int64_t data; void *udata;` = 40 bytes
 * (4 bytes of padding before `data`). Filters are positive: `EVFILT_READ 0U`, `EVFILT_WRITE 1U`,
 * `EVFILT_USER 8U`. The header renames `kevent` to `__kevent50` (the plain `kevent` symbol
 * takes the pre-6.0 `struct timespec50`), and the counts are `size_t`.
 */
export const NETBSD10: KeventProfile = {
  os: 'netbsd10',
  header: 'NetBSD sys/sys/event.h rev 1.54 (2022/07/19); kevent is __RENAME(__kevent50)',
  since: 'NetBSD 6.0 (__kevent50), through 10.x',
  size: 40,
  ident: IDENT_U64,
  filter: { offset: 8, width: 4, signed: false },
  flags: { offset: 12, width: 4, signed: false },
  fflags: { offset: 16, width: 4, signed: false },
  data: { offset: 24, width: 8, signed: true },
  udata: { offset: 32, width: 8, signed: false },
  ext: null,
  symbol: '__kevent50',
  countType: 'size_t',
  constants: NETBSD_CONSTANTS,
};

/**
 * NetBSD 11 and later: `struct kevent` grew a trailing `uint64_t ext[4]` (72 bytes) and the
 * header renames `kevent` to `__kevent100`. Source: NetBSD sys/compat/sys/event.h rev 1.4
 * (2023/07/29), which keeps the 40-byte layout as `struct kevent100` for `__kevent50` and
 * declares `__kevent100(int, const struct kevent *, size_t, struct kevent *, size_t, ...)`.
 */
export const NETBSD11: KeventProfile = {
  ...NETBSD10,
  os: 'netbsd11',
  header: 'NetBSD sys/compat/sys/event.h rev 1.4 (2023/07/29): struct kevent100 vs __kevent100',
  since: 'NetBSD 11.0',
  size: 72,
  ext: { offset: 40, count: 4 },
  symbol: '__kevent100',
};

/**
 * libkqueue on Linux, include/sys/event.h.in (mheily/libkqueue): the FreeBSD 11 layout,
 * `uintptr_t ident; short filter; unsigned short flags; unsigned int fflags; intptr_t data;
 * void *udata;` = 32 bytes, with FreeBSD's numbering: `EVFILT_USER (-11)`.
 */
export const LIBKQUEUE: KeventProfile = {
  ...CLASSIC_32,
  os: 'libkqueue',
  header: 'libkqueue include/sys/event.h.in',
  since: 'libkqueue (mheily/libkqueue master, 2026)',
  constants: negativeFilters(-11),
};

/** Every profile, by OS. */
export const PROFILES: Readonly<Record<KqueueOs, KeventProfile>> = {
  freebsd: FREEBSD,
  macos: MACOS,
  openbsd: OPENBSD,
  netbsd10: NETBSD10,
  netbsd11: NETBSD11,
  libkqueue: LIBKQUEUE,
};

/** One `struct kevent`, decoded (numbers: every field used here fits in 2^53). */
export interface Kevent {
  ident: number;
  filter: number;
  flags: number;
  fflags: number;
  data: number;
  udata: number;
}

/** True on a little-endian host: the kernel writes structs in the host's byte order. */
const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const TWO_32 = 0x1_0000_0000;

/** Writes a field; 8-byte fields take a safe integer and are split into two 32-bit halves. */
export function writeField(view: DataView, base: number, field: KeventField, value: number): void {
  const at = base + field.offset;
  switch (field.width) {
    case 2:
      if (field.signed) view.setInt16(at, value, LE); else view.setUint16(at, value, LE);
      return;
    case 4:
      if (field.signed) view.setInt32(at, value, LE); else view.setUint32(at, value >>> 0, LE);
      return;
    case 8: {
      const hi = Math.floor(value / TWO_32);
      const lo = value - hi * TWO_32;
      view.setUint32(at + (LE ? 0 : 4), lo, LE);
      view.setInt32(at + (LE ? 4 : 0), hi, LE);
      return;
    }
  }
}

/** Reads a field; 8-byte fields are read as a number (exact below 2^53 in magnitude). */
export function readField(view: DataView, base: number, field: KeventField): number {
  const at = base + field.offset;
  switch (field.width) {
    case 2:
      return field.signed ? view.getInt16(at, LE) : view.getUint16(at, LE);
    case 4:
      return field.signed ? view.getInt32(at, LE) : view.getUint32(at, LE);
    case 8: {
      const lo = view.getUint32(at + (LE ? 0 : 4), LE);
      const hi = field.signed ? view.getInt32(at + (LE ? 4 : 0), LE) : view.getUint32(at + (LE ? 4 : 0), LE);
      return hi * TWO_32 + lo;
    }
  }
}

/**
 * Fills the index-th `struct kevent` of `view` (EV_SET), zeroing `ext[]` and padding.
 * Allocates nothing: this is the hot-path encoder.
 */
export function writeKevent(
  view: DataView, index: number, p: KeventProfile,
  ident: number, filter: number, flags: number, fflags: number, data: number, udata: number,
): void {
  const base = index * p.size;
  for (let i = 0; i < p.size; i += 4) view.setUint32(base + i, 0);
  writeField(view, base, p.ident, ident);
  writeField(view, base, p.filter, filter);
  writeField(view, base, p.flags, flags);
  writeField(view, base, p.fflags, fflags);
  writeField(view, base, p.data, data);
  writeField(view, base, p.udata, udata);
}

/** Encodes `ev` as the index-th `struct kevent` of `view`. */
export function encodeKevent(view: DataView, index: number, p: KeventProfile, ev: Kevent): void {
  writeKevent(view, index, p, ev.ident, ev.filter, ev.flags, ev.fflags, ev.data, ev.udata);
}

/** Decodes the index-th `struct kevent` of `view` into a new object (not for the hot path). */
export function decodeKevent(view: DataView, index: number, p: KeventProfile): Kevent {
  const base = index * p.size;
  return {
    ident: readField(view, base, p.ident),
    filter: readField(view, base, p.filter),
    flags: readField(view, base, p.flags),
    fflags: readField(view, base, p.fflags),
    data: readField(view, base, p.data),
    udata: readField(view, base, p.udata),
  };
}
