/** struct kevent layouts per OS against the published headers, and encode/decode round trips. */
import koffi, { type TypeObject } from 'koffi';
import { describe, expect, it } from 'vitest';
import {
  decodeKevent,
  encodeKevent,
  PROFILES,
  readField,
  writeField,
  type Kevent,
  type KeventProfile,
  type KqueueOs,
} from '../src/sys/kqueue-layouts.js';

/** What each header says, transcribed by hand (offsets worked out from the member types, LP64). */
const PUBLISHED: Record<KqueueOs, {
  size: number;
  offsets: [ident: number, filter: number, flags: number, fflags: number, data: number, udata: number];
  filterWidth: number;
  flagsWidth: number;
  ext: number | null;
  read: number;
  write: number;
  user: number;
  symbol: string;
}> = {
  // FreeBSD >= 12 sys/sys/event.h: uintptr_t, short, u_short, u_int, int64_t, void *, uint64_t ext[4]
  freebsd: { size: 64, offsets: [0, 8, 10, 12, 16, 24], filterWidth: 2, flagsWidth: 2, ext: 32, read: -1, write: -2, user: -11, symbol: 'kevent' },
  // xnu bsd/sys/event.h, #pragma pack(4): uintptr_t, int16_t, uint16_t, uint32_t, intptr_t, void *
  macos: { size: 32, offsets: [0, 8, 10, 12, 16, 24], filterWidth: 2, flagsWidth: 2, ext: null, read: -1, write: -2, user: -10, symbol: 'kevent' },
  // OpenBSD sys/sys/event.h 1.74: __uintptr_t, short, unsigned short, unsigned int, __int64_t, void *
  openbsd: { size: 32, offsets: [0, 8, 10, 12, 16, 24], filterWidth: 2, flagsWidth: 2, ext: null, read: -1, write: -2, user: -10, symbol: 'kevent' },
  // NetBSD sys/sys/event.h 1.54: uintptr_t, uint32_t, uint32_t, uint32_t, (pad 4) int64_t, void *
  netbsd10: { size: 40, offsets: [0, 8, 12, 16, 24, 32], filterWidth: 4, flagsWidth: 4, ext: null, read: 0, write: 1, user: 8, symbol: '__kevent50' },
  // NetBSD 11: the same plus uint64_t ext[4]
  netbsd11: { size: 72, offsets: [0, 8, 12, 16, 24, 32], filterWidth: 4, flagsWidth: 4, ext: 40, read: 0, write: 1, user: 8, symbol: '__kevent100' },
  // libkqueue include/sys/event.h.in: uintptr_t, short, unsigned short, unsigned int, intptr_t, void *
  libkqueue: { size: 32, offsets: [0, 8, 10, 12, 16, 24], filterWidth: 2, flagsWidth: 2, ext: null, read: -1, write: -2, user: -11, symbol: 'kevent' },
};

/** The C declaration of each profile's struct, laid out by koffi's own ABI code. */
function koffiStruct(p: KeventProfile): TypeObject {
  const narrow = p.filter.width === 4 ? 'uint32_t' : 'int16_t';
  const narrowFlags = p.flags.width === 4 ? 'uint32_t' : 'uint16_t';
  // #pragma pack(4) on macOS: no member aligned beyond 4.
  const packed = p.os === 'macos';
  const wide = (t: string): string | [number, string] => (packed ? [4, t] : t);
  const def: Record<string, string | [number, string] | TypeObject> = {
    ident: wide('uint64_t'),
    filter: narrow,
    flags: narrowFlags,
    fflags: 'uint32_t',
    data: wide('int64_t'),
    udata: wide('void *'),
  };
  if (p.ext !== null) def.ext = koffi.array('uint64_t', p.ext.count);
  return koffi.struct(def as Record<string, string | [number, string]>);
}

const names = Object.keys(PROFILES) as KqueueOs[];

describe('kqueue struct layouts', () => {
  it.each(names)('%s matches its published header', (os) => {
    const p = PROFILES[os];
    const want = PUBLISHED[os];
    expect(p.os).toBe(os);
    expect(p.size).toBe(want.size);
    expect([p.ident.offset, p.filter.offset, p.flags.offset, p.fflags.offset, p.data.offset, p.udata.offset]).toEqual(want.offsets);
    expect([p.ident.width, p.filter.width, p.flags.width, p.fflags.width, p.data.width, p.udata.width]).toEqual([8, want.filterWidth, want.flagsWidth, 4, 8, 8]);
    expect(p.ext === null ? null : p.ext.offset).toBe(want.ext);
    expect(p.symbol).toBe(want.symbol);
    expect([p.constants.EVFILT_READ, p.constants.EVFILT_WRITE, p.constants.EVFILT_USER]).toEqual([want.read, want.write, want.user]);
  });

  it.each(names)('%s agrees with a C compiler layout of the same members (koffi)', (os) => {
    const p = PROFILES[os];
    const t = koffiStruct(p);
    expect(koffi.sizeof(t)).toBe(p.size);
    for (const name of ['ident', 'filter', 'flags', 'fflags', 'data', 'udata'] as const) {
      expect(koffi.offsetof(t, name)).toBe(p[name].offset);
    }
    if (p.ext !== null) expect(koffi.offsetof(t, 'ext')).toBe(p.ext.offset);
  });

  it.each(names)('%s uses the flag values every header shares', (os) => {
    const c = PROFILES[os].constants;
    expect([c.EV_ADD, c.EV_DELETE, c.EV_ENABLE, c.EV_DISABLE]).toEqual([0x1, 0x2, 0x4, 0x8]);
    expect([c.EV_ONESHOT, c.EV_CLEAR, c.EV_RECEIPT, c.EV_DISPATCH]).toEqual([0x10, 0x20, 0x40, 0x80]);
    expect([c.EV_EOF, c.EV_ERROR]).toEqual([0x8000, 0x4000]);
    expect([c.NOTE_TRIGGER, c.NOTE_FFNOP, c.NOTE_FFAND, c.NOTE_FFOR, c.NOTE_FFCOPY]).toEqual([0x01000000, 0, 0x40000000, 0x80000000, 0xc0000000]);
    expect([c.NOTE_FFCTRLMASK, c.NOTE_FFLAGSMASK, c.NOTE_LOWAT]).toEqual([0xc0000000, 0x00ffffff, 0x1]);
  });
});

describe('kevent encode and decode', () => {
  it.each(names)('%s round-trips an event and writes nothing outside its slot', (os) => {
    const p = PROFILES[os];
    const c = p.constants;
    const buf = new Uint8Array(3 * p.size).fill(0xa5);
    const view = new DataView(buf.buffer);
    const ev: Kevent = {
      ident: 0x7fff_fffe,
      filter: c.EVFILT_WRITE,
      flags: c.EV_ADD | c.EV_DISPATCH | c.EV_RECEIPT,
      fflags: c.NOTE_TRIGGER | 0x123,
      data: -(2 ** 40) - 3,
      udata: 2 ** 53 - 1,
    };
    encodeKevent(view, 1, p, ev);
    expect(decodeKevent(view, 1, p)).toEqual(ev);
    // Neighbours untouched; padding and ext[] of the slot zeroed.
    expect(buf.subarray(0, p.size).every((b) => b === 0xa5)).toBe(true);
    expect(buf.subarray(2 * p.size).every((b) => b === 0xa5)).toBe(true);
    if (p.ext !== null) {
      const ext = buf.subarray(p.size + p.ext.offset, p.size + p.ext.offset + 8 * p.ext.count);
      expect(ext.every((b) => b === 0)).toBe(true);
    }
  });

  it.each(names)('%s decodes bytes written as the C struct would hold them', (os) => {
    const p = PROFILES[os];
    const c = p.constants;
    const t = koffiStruct(p);
    const bytes = new Uint8Array(p.size);
    koffi.encode(bytes, t, {
      ident: 42n,
      filter: c.EVFILT_READ,
      flags: c.EV_EOF | c.EV_DISPATCH,
      fflags: 104,
      data: 7n,
      udata: 0x1f_ffff_ffff_fffen,
    });
    expect(decodeKevent(new DataView(bytes.buffer), 0, p)).toEqual({
      ident: 42,
      filter: c.EVFILT_READ,
      flags: c.EV_EOF | c.EV_DISPATCH,
      fflags: 104,
      data: 7,
      udata: 2 ** 53 - 2,
    });
  });

  it('keeps 64-bit fields exact up to 2^53, negative ones included', () => {
    const view = new DataView(new ArrayBuffer(8));
    const signed = { offset: 0, width: 8, signed: true } as const;
    const unsigned = { offset: 0, width: 8, signed: false } as const;
    for (const v of [0, 1, -1, 2 ** 32 - 1, 2 ** 32, -(2 ** 32), 2 ** 53 - 1, -(2 ** 53 - 1)]) {
      writeField(view, 0, signed, v);
      expect(readField(view, 0, signed)).toBe(v);
      expect(view.getBigInt64(0, true)).toBe(BigInt(v));
    }
    writeField(view, 0, unsigned, 2 ** 53 - 1);
    expect(readField(view, 0, unsigned)).toBe(2 ** 53 - 1);
    expect(view.getBigUint64(0, true)).toBe(2n ** 53n - 1n);
  });
});
