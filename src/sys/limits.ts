/** The process's descriptor limit (RLIMIT_NOFILE), read and raised through koffi. */
import { errno, libc, syscallError } from './posix.js';
import { onFirstUse } from './once.js';
import { platform } from './platform.js';

/** The soft and hard descriptor limits; Infinity where there is none (RLIM_INFINITY, Windows). */
export interface FdLimit {
  readonly soft: number;
  readonly hard: number;
}

type RlimitCall = (resource: number, rlim: BigUint64Array) => number;

/** struct rlimit is two rlim_t, 64 bits each on every LP64 system this runs on. */
const rlimitCalls = onFirstUse(() => {
  const lib = libc();
  return {
    get: lib.func('int getrlimit(int resource, void *rlim)') as RlimitCall,
    set: lib.func('int setrlimit(int resource, void *rlim)') as RlimitCall,
  };
});

const RLIM_INFINITY = 0xffff_ffff_ffff_ffffn;

function toNumber(value: bigint): number {
  return value === RLIM_INFINITY ? Infinity : Number(value);
}

/**
 * Raises the soft descriptor limit to the hard one, as servers do at start, and returns the
 * limits then in force. Where the kernel refuses (macOS caps the soft limit below an unlimited
 * hard one) the soft limit stays as it was. On Windows, which has no such limit, it does nothing.
 */
export function raiseFdLimit(): FdLimit {
  const resource = platform.rlimitNofile;
  if (resource === undefined) return { soft: Infinity, hard: Infinity };
  const { get, set } = rlimitCalls();
  const limit = new BigUint64Array(2);
  if (get(resource, limit) !== 0) throw syscallError('getrlimit', errno(), 'reading the descriptor limit');
  if (limit[0]! < limit[1]! && set(resource, new BigUint64Array([limit[1]!, limit[1]!])) === 0) limit[0] = limit[1]!;
  return { soft: toNumber(limit[0]!), hard: toNumber(limit[1]!) };
}
