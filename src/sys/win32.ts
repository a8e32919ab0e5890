/**
 * koffi bindings to Windows (kernel32, ntdll, ws2_32): I/O completion ports and AFD polling for
 * the IOCP backend, and the Winsock socket calls of src/net/winsock.ts.
 */
import koffi from 'koffi';
import { systemError, type ReactorError } from '../core/errors.js';
import { onFirstUse } from './once.js';

/**
 * A pointer or HANDLE argument. koffi 3 takes a BigInt or a number as an address, null as
 * NULL, and a typed array as a pointer to its bytes (for the length of one synchronous call).
 */
export type Ptr = bigint | number | null | ArrayBufferView;

/** The Win32 and NT calls this project makes, typed. Loaded once per thread by `win32()`. */
export interface Win32 {
  // kernel32.dll
  CreateIoCompletionPort(file: Ptr, port: Ptr, key: number, threads: number): bigint | null;
  GetQueuedCompletionStatusEx(port: Ptr, entries: Ptr, count: number, removed: Uint32Array, ms: number, alertable: number): number;
  PostQueuedCompletionStatus(port: Ptr, bytes: number, key: number, overlapped: Ptr): number;
  SetFileCompletionNotificationModes(file: Ptr, flags: number): number;
  CloseHandle(handle: Ptr): number;
  GetLastError(): number;
  VirtualAlloc(address: Ptr, size: number, type: number, protect: number): bigint | null;
  VirtualFree(address: Ptr, size: number, type: number): number;
  // ntdll.dll
  NtCreateFile(
    handle: Ptr,
    access: number,
    attributes: Ptr,
    iosb: Ptr,
    allocationSize: Ptr,
    fileAttributes: number,
    share: number,
    disposition: number,
    options: number,
    ea: Ptr,
    eaLength: number,
  ): number;
  NtDeviceIoControlFile(
    file: Ptr,
    event: Ptr,
    apcRoutine: Ptr,
    apcContext: Ptr,
    iosb: Ptr,
    code: number,
    input: Ptr,
    inputLength: number,
    output: Ptr,
    outputLength: number,
  ): number;
  NtCancelIoFileEx(file: Ptr, request: Ptr, iosb: Ptr): number;
  RtlNtStatusToDosError(status: number): number;
  // ws2_32.dll
  WSAStartup(version: number, data: Ptr): number;
  WSACleanup(): number;
  WSAIoctl(
    socket: number,
    code: number,
    input: Ptr,
    inputLength: number,
    output: Ptr,
    outputLength: number,
    bytesReturned: Uint32Array,
    overlapped: Ptr,
    completion: Ptr,
  ): number;
  WSAGetLastError(): number;
  // ws2_32.dll: sockets, for src/net/winsock.ts. A SOCKET is returned as intptr_t, so
  // INVALID_SOCKET reads as -1; it is passed as uintptr_t (a JS number).
  WSASocketW(af: number, type: number, protocol: number, info: Ptr, group: number, flags: number): number;
  bind(socket: number, address: Uint8Array, length: number): number;
  listen(socket: number, backlog: number): number;
  accept(socket: number, address: Ptr, length: Ptr): number;
  connect(socket: number, address: Uint8Array, length: number): number;
  recv(socket: number, buf: Uint8Array, length: number, flags: number): number;
  send(socket: number, buf: Uint8Array, length: number, flags: number): number;
  shutdown(socket: number, how: number): number;
  closesocket(socket: number): number;
  ioctlsocket(socket: number, command: number, argument: Uint32Array): number;
  getsockname(socket: number, address: Uint8Array, length: Int32Array): number;
  getsockopt(socket: number, level: number, name: number, value: Int32Array, length: Int32Array): number;
  setsockopt(socket: number, level: number, name: number, value: Int32Array, length: number): number;
  // kernel32.dll, for sockets
  SetHandleInformation(handle: Ptr, mask: number, flags: number): number;
}

/**
 * Binds the three DLLs on first use, as every binding here is bound. Each thread has its own
 * koffi instance and binds its own copy; the handles and memory they name are the process's,
 * shared by all.
 */
export const win32: () => Win32 = onFirstUse(() => {
  const kernel32 = koffi.load('kernel32.dll');
  const ntdll = koffi.load('ntdll.dll');
  const ws2 = koffi.load('ws2_32.dll');
  // Pointer-sized values are declared `void *` (HANDLE, pointers) or `uintptr_t` (SOCKET,
  // ULONG_PTR keys), so a JS number passes without a BigInt. __stdcall is the Win32 ABI
  // on ia32 and is ignored on x64 and arm64.
  return {
    CreateIoCompletionPort: kernel32.func(
      'void * __stdcall CreateIoCompletionPort(void *file, void *port, uintptr_t key, uint32_t threads)',
    ),
    GetQueuedCompletionStatusEx: kernel32.func(
      'int __stdcall GetQueuedCompletionStatusEx(void *port, void *entries, uint32_t count, void *removed, uint32_t ms, int alertable)',
    ),
    PostQueuedCompletionStatus: kernel32.func(
      'int __stdcall PostQueuedCompletionStatus(void *port, uint32_t bytes, uintptr_t key, void *overlapped)',
    ),
    SetFileCompletionNotificationModes: kernel32.func(
      'int __stdcall SetFileCompletionNotificationModes(void *file, uint8_t flags)',
    ),
    CloseHandle: kernel32.func('int __stdcall CloseHandle(void *handle)'),
    GetLastError: kernel32.func('uint32_t __stdcall GetLastError(void)'),
    VirtualAlloc: kernel32.func('void * __stdcall VirtualAlloc(void *address, size_t size, uint32_t type, uint32_t protect)'),
    VirtualFree: kernel32.func('int __stdcall VirtualFree(void *address, size_t size, uint32_t type)'),
    NtCreateFile: ntdll.func(
      'int32_t __stdcall NtCreateFile(void *handle, uint32_t access, void *attributes, void *iosb, void *allocationSize, uint32_t fileAttributes, uint32_t share, uint32_t disposition, uint32_t options, void *ea, uint32_t eaLength)',
    ),
    NtDeviceIoControlFile: ntdll.func(
      'int32_t __stdcall NtDeviceIoControlFile(void *file, void *event, void *apcRoutine, void *apcContext, void *iosb, uint32_t code, void *input, uint32_t inputLength, void *output, uint32_t outputLength)',
    ),
    NtCancelIoFileEx: ntdll.func('int32_t __stdcall NtCancelIoFileEx(void *file, void *request, void *iosb)'),
    RtlNtStatusToDosError: ntdll.func('uint32_t __stdcall RtlNtStatusToDosError(int32_t status)'),
    WSAStartup: ws2.func('int __stdcall WSAStartup(uint16_t version, void *data)'),
    WSACleanup: ws2.func('int __stdcall WSACleanup(void)'),
    WSAIoctl: ws2.func(
      'int __stdcall WSAIoctl(uintptr_t socket, uint32_t code, void *input, uint32_t inputLength, void *output, uint32_t outputLength, void *bytesReturned, void *overlapped, void *completion)',
    ),
    WSAGetLastError: ws2.func('int __stdcall WSAGetLastError(void)'),
    WSASocketW: ws2.func(
      'intptr_t __stdcall WSASocketW(int af, int type, int protocol, void *info, uint32_t group, uint32_t flags)',
    ),
    bind: ws2.func('int __stdcall bind(uintptr_t socket, void *address, int length)'),
    listen: ws2.func('int __stdcall listen(uintptr_t socket, int backlog)'),
    accept: ws2.func('intptr_t __stdcall accept(uintptr_t socket, void *address, void *length)'),
    connect: ws2.func('int __stdcall connect(uintptr_t socket, void *address, int length)'),
    recv: ws2.func('int __stdcall recv(uintptr_t socket, void *buf, int length, int flags)'),
    send: ws2.func('int __stdcall send(uintptr_t socket, void *buf, int length, int flags)'),
    shutdown: ws2.func('int __stdcall shutdown(uintptr_t socket, int how)'),
    closesocket: ws2.func('int __stdcall closesocket(uintptr_t socket)'),
    ioctlsocket: ws2.func('int __stdcall ioctlsocket(uintptr_t socket, uint32_t command, void *argument)'),
    getsockname: ws2.func('int __stdcall getsockname(uintptr_t socket, void *address, void *length)'),
    getsockopt: ws2.func('int __stdcall getsockopt(uintptr_t socket, int level, int name, void *value, void *length)'),
    setsockopt: ws2.func('int __stdcall setsockopt(uintptr_t socket, int level, int name, void *value, int length)'),
    SetHandleInformation: kernel32.func('int __stdcall SetHandleInformation(void *handle, uint32_t mask, uint32_t flags)'),
  } as Win32;
});

// <minwinbase.h>: struct OVERLAPPED_ENTRY { ULONG_PTR lpCompletionKey; LPOVERLAPPED
// lpOverlapped; ULONG_PTR Internal; DWORD dwNumberOfBytesTransferred; }, 64-bit layout.
export const OVERLAPPED_ENTRY_SIZE = 32;
export const OVERLAPPED_ENTRY_KEY = 0;
export const OVERLAPPED_ENTRY_OVERLAPPED = 8;
/** The NTSTATUS of the completed request (IO_STATUS_BLOCK.Status). */
export const OVERLAPPED_ENTRY_INTERNAL = 16;
export const OVERLAPPED_ENTRY_BYTES = 24;

// <wdm.h>: struct IO_STATUS_BLOCK { union { NTSTATUS Status; PVOID Pointer; }; ULONG_PTR Information; }.
export const IO_STATUS_BLOCK_SIZE = 16;
export const IO_STATUS_BLOCK_STATUS = 0;
export const IO_STATUS_BLOCK_INFORMATION = 8;

// AFD's poll request. Not in the SDK: the layout the AFD driver reads, as ReactOS
// (drivers/network/afd) and Wine (include/wine/afd.h, struct afd_poll_params_64) define it, and
// as wepoll, mio and the Rust polling crate use it.
//   struct AFD_POLL_HANDLE_INFO { HANDLE Handle; ULONG Events; NTSTATUS Status; };
//   struct AFD_POLL_INFO { LARGE_INTEGER Timeout; ULONG NumberOfHandles; ULONG Exclusive;
//                          AFD_POLL_HANDLE_INFO Handles[1]; };
export const AFD_POLL_INFO_SIZE = 32;
export const AFD_POLL_INFO_TIMEOUT = 0;
export const AFD_POLL_INFO_NUMBER_OF_HANDLES = 8;
export const AFD_POLL_INFO_EXCLUSIVE = 12;
export const AFD_POLL_INFO_HANDLE = 16;
export const AFD_POLL_INFO_EVENTS = 24;
export const AFD_POLL_INFO_STATUS = 28;

/**
 * IOCTL_AFD_POLL: (FILE_DEVICE_NETWORK 0x12 << 12) | (AFD_SELECT 9 << 2) | METHOD_BUFFERED.
 * Buffered: AFD copies the result into our output buffer when the request completes, so that
 * buffer belongs to the kernel until the completion has been dequeued.
 */
export const IOCTL_AFD_POLL = 0x00012024;

// AFD poll event bits (ReactOS afd/shared.h AFD_EVENT_*, Wine afd.h AFD_POLL_*).
export const AFD_POLL_RECEIVE = 0x0001;
export const AFD_POLL_RECEIVE_EXPEDITED = 0x0002;
export const AFD_POLL_SEND = 0x0004;
/** The peer shut down its sending side (FIN). */
export const AFD_POLL_DISCONNECT = 0x0008;
/** The connection was reset (RST). */
export const AFD_POLL_ABORT = 0x0010;
/** This socket was closed with closesocket() or CloseHandle(). */
export const AFD_POLL_LOCAL_CLOSE = 0x0020;
export const AFD_POLL_CONNECT = 0x0040;
export const AFD_POLL_ACCEPT = 0x0080;
export const AFD_POLL_CONNECT_FAIL = 0x0100;

// <ntstatus.h>, as signed 32-bit values the way koffi returns an int32_t NTSTATUS.
export const STATUS_SUCCESS = 0;
export const STATUS_PENDING = 0x00000103;
export const STATUS_CANCELLED = 0xc0000120 | 0;
export const STATUS_NOT_FOUND = 0xc0000225 | 0;
export const STATUS_INVALID_HANDLE = 0xc0000008 | 0;

// <ntdef.h>: struct UNICODE_STRING { USHORT Length; USHORT MaximumLength; PWSTR Buffer; }.
export const UNICODE_STRING_SIZE = 16;
export const UNICODE_STRING_LENGTH = 0;
export const UNICODE_STRING_MAXIMUM_LENGTH = 2;
export const UNICODE_STRING_BUFFER = 8;

// <ntdef.h>: struct OBJECT_ATTRIBUTES { ULONG Length; HANDLE RootDirectory; PUNICODE_STRING
// ObjectName; ULONG Attributes; PVOID SecurityDescriptor; PVOID SecurityQualityOfService; }.
export const OBJECT_ATTRIBUTES_SIZE = 48;
export const OBJECT_ATTRIBUTES_LENGTH = 0;
export const OBJECT_ATTRIBUTES_OBJECT_NAME = 16;

// <winnt.h>
export const SYNCHRONIZE = 0x00100000;
export const FILE_SHARE_READ = 0x1;
export const FILE_SHARE_WRITE = 0x2;
export const MEM_COMMIT = 0x1000;
export const MEM_RESERVE = 0x2000;
export const MEM_RELEASE = 0x8000;
export const PAGE_READWRITE = 0x04;

// <wdm.h>: CreateDisposition of NtCreateFile.
export const FILE_OPEN = 0x1;

// <winbase.h>
export const INFINITE = 0xffffffff;
/** SetFileCompletionNotificationModes: do not signal the file handle as an event on completion. */
export const FILE_SKIP_SET_EVENT_ON_HANDLE = 0x2;

// <ws2def.h>, <mswsock.h>: _WSAIOR(IOC_WS2, 34) and _WSAIOR(IOC_WS2, 29).
export const SIO_BASE_HANDLE = 0x48000022;
export const SIO_BSP_HANDLE_POLL = 0x4800001d;
export const SOCKET_ERROR = -1;
/** WSADATA is 408 bytes on 64-bit Windows; room to spare. */
export const WSADATA_SIZE = 512;
/** MAKEWORD(2, 2). */
export const WINSOCK_VERSION_2_2 = 0x0202;

// Sockets. <winsock2.h>, <ws2def.h>: SOCK_STREAM 1, IPPROTO_TCP 6, SOL_SOCKET 0xffff,
// SO_REUSEADDR 0x0004, SO_EXCLUSIVEADDRUSE ((int)(~SO_REUSEADDR)), SO_ERROR 0x1007,
// SD_RECEIVE/SD_SEND/SD_BOTH 0/1/2, FIONBIO _IOW('f', 126, u_long); <ws2ipdef.h>: TCP_NODELAY
// 0x0001. The address families are in src/net/sockaddr.ts (WINDOWS_SOCKADDR).
export const SOCK_STREAM = 1;
export const IPPROTO_TCP = 6;
export const SOL_SOCKET = 0xffff;
export const SO_REUSEADDR = 0x0004;
export const SO_EXCLUSIVEADDRUSE = ~SO_REUSEADDR;
export const SO_ERROR = 0x1007;
export const TCP_NODELAY = 0x0001;
export const SD_RECEIVE = 0;
export const SD_SEND = 1;
export const SD_BOTH = 2;
export const FIONBIO = 0x8004667e;
/** INVALID_SOCKET (~0) as the intptr_t the bindings return it as. */
export const INVALID_SOCKET = -1;
/** WSASocketW flags: overlapped I/O (what socket() gives), and not inherited by child processes. */
export const WSA_FLAG_OVERLAPPED = 0x01;
export const WSA_FLAG_NO_HANDLE_INHERIT = 0x80;
/** <winbase.h> SetHandleInformation: the handle is inherited by child processes. */
export const HANDLE_FLAG_INHERIT = 0x1;

// <winerror.h>, Win32 and Winsock error numbers this project names.
export const ERROR_FILE_NOT_FOUND = 2;
export const ERROR_PATH_NOT_FOUND = 3;
export const ERROR_TOO_MANY_OPEN_FILES = 4;
export const ERROR_ACCESS_DENIED = 5;
export const ERROR_INVALID_HANDLE = 6;
export const ERROR_NOT_ENOUGH_MEMORY = 8;
export const ERROR_OUTOFMEMORY = 14;
export const ERROR_NOT_SUPPORTED = 50;
export const ERROR_INVALID_PARAMETER = 87;
export const WAIT_TIMEOUT = 258;
export const ERROR_OPERATION_ABORTED = 995;
export const ERROR_IO_PENDING = 997;
export const ERROR_ABANDONED_WAIT_0 = 735;
export const ERROR_NOT_FOUND = 1168;
export const WSAEINTR = 10004;
export const WSAEBADF = 10009;
export const WSAEACCES = 10013;
export const WSAEFAULT = 10014;
export const WSAEINVAL = 10022;
export const WSAEMFILE = 10024;
/** A non-blocking call that would block: EAGAIN (connect's EINPROGRESS too). */
export const WSAEWOULDBLOCK = 10035;
export const WSAEINPROGRESS = 10036;
export const WSAEALREADY = 10037;
export const WSAENOTSOCK = 10038;
export const WSAEDESTADDRREQ = 10039;
export const WSAEMSGSIZE = 10040;
export const WSAEPROTOTYPE = 10041;
export const WSAENOPROTOOPT = 10042;
export const WSAEPROTONOSUPPORT = 10043;
export const WSAESOCKTNOSUPPORT = 10044;
export const WSAEOPNOTSUPP = 10045;
export const WSAEPFNOSUPPORT = 10046;
export const WSAEAFNOSUPPORT = 10047;
export const WSAEADDRINUSE = 10048;
export const WSAEADDRNOTAVAIL = 10049;
export const WSAENETDOWN = 10050;
export const WSAENETUNREACH = 10051;
export const WSAENETRESET = 10052;
export const WSAECONNABORTED = 10053;
export const WSAECONNRESET = 10054;
export const WSAENOBUFS = 10055;
export const WSAEISCONN = 10056;
export const WSAENOTCONN = 10057;
/** A send after shutdown(SD_SEND): POSIX says EPIPE. */
export const WSAESHUTDOWN = 10058;
export const WSAETIMEDOUT = 10060;
export const WSAECONNREFUSED = 10061;
export const WSAEHOSTDOWN = 10064;
export const WSAEHOSTUNREACH = 10065;
export const WSASYSNOTREADY = 10091;
export const WSAVERNOTSUPPORTED = 10092;
export const WSANOTINITIALISED = 10093;

/** Win32 / Winsock error → the errno name a POSIX program would see for the same failure. */
const errnoNames = new Map<number, string>([
  [ERROR_FILE_NOT_FOUND, 'ENOENT'],
  [ERROR_PATH_NOT_FOUND, 'ENOENT'],
  [ERROR_TOO_MANY_OPEN_FILES, 'EMFILE'],
  [ERROR_ACCESS_DENIED, 'EACCES'],
  [ERROR_INVALID_HANDLE, 'EBADF'],
  [ERROR_NOT_ENOUGH_MEMORY, 'ENOMEM'],
  [ERROR_OUTOFMEMORY, 'ENOMEM'],
  [ERROR_NOT_SUPPORTED, 'ENOTSUP'],
  [ERROR_INVALID_PARAMETER, 'EINVAL'],
  [WAIT_TIMEOUT, 'ETIMEDOUT'],
  [ERROR_OPERATION_ABORTED, 'ECANCELED'],
  [ERROR_ABANDONED_WAIT_0, 'ECLOSED'],
  [ERROR_NOT_FOUND, 'ENOENT'],
  [WSAEINTR, 'EINTR'],
  [WSAEBADF, 'EBADF'],
  [WSAEACCES, 'EACCES'],
  [WSAEFAULT, 'EFAULT'],
  [WSAEINVAL, 'EINVAL'],
  [WSAEMFILE, 'EMFILE'],
  [WSAEWOULDBLOCK, 'EAGAIN'],
  [WSAEINPROGRESS, 'EINPROGRESS'],
  [WSAEALREADY, 'EALREADY'],
  [WSAENOTSOCK, 'ENOTSOCK'],
  [WSAEDESTADDRREQ, 'EDESTADDRREQ'],
  [WSAEMSGSIZE, 'EMSGSIZE'],
  [WSAEPROTOTYPE, 'EPROTOTYPE'],
  [WSAENOPROTOOPT, 'ENOPROTOOPT'],
  [WSAEPROTONOSUPPORT, 'EPROTONOSUPPORT'],
  [WSAESOCKTNOSUPPORT, 'ESOCKTNOSUPPORT'],
  [WSAEOPNOTSUPP, 'ENOTSUP'],
  [WSAEPFNOSUPPORT, 'EAFNOSUPPORT'],
  [WSAEAFNOSUPPORT, 'EAFNOSUPPORT'],
  [WSAEADDRINUSE, 'EADDRINUSE'],
  [WSAEADDRNOTAVAIL, 'EADDRNOTAVAIL'],
  [WSAENETDOWN, 'ENETDOWN'],
  [WSAENETUNREACH, 'ENETUNREACH'],
  [WSAENETRESET, 'ENETRESET'],
  [WSAECONNABORTED, 'ECONNABORTED'],
  [WSAECONNRESET, 'ECONNRESET'],
  [WSAENOBUFS, 'ENOBUFS'],
  [WSAEISCONN, 'EISCONN'],
  [WSAENOTCONN, 'ENOTCONN'],
  [WSAESHUTDOWN, 'EPIPE'],
  [WSAETIMEDOUT, 'ETIMEDOUT'],
  [WSAECONNREFUSED, 'ECONNREFUSED'],
  [WSAEHOSTDOWN, 'EHOSTDOWN'],
  [WSAEHOSTUNREACH, 'EHOSTUNREACH'],
  [WSASYSNOTREADY, 'ENETDOWN'],
  [WSAVERNOTSUPPORTED, 'ENOTSUP'],
  [WSANOTINITIALISED, 'EINVAL'],
]);

/** The errno-style name of a Win32 or Winsock error; EIO for one with no POSIX counterpart. */
export function win32ErrnoName(error: number): string {
  return errnoNames.get(error) ?? 'EIO';
}

/** A ReactorError for a Win32 or Winsock call that failed with `error`, saying what was attempted. */
export function win32Error(syscall: string, error: number, what: string): ReactorError {
  return systemError(syscall, win32ErrnoName(error), error, `Windows error ${error}: ${what}`);
}

/** A ReactorError for an NT call that returned `status`, translated as Win32 would. */
export function ntError(syscall: string, status: number, what: string): ReactorError {
  const error = win32().RtlNtStatusToDosError(status);
  const hex = (status >>> 0).toString(16).padStart(8, '0');
  return systemError(syscall, win32ErrnoName(error), error, `NTSTATUS 0x${hex} (Windows error ${error}): ${what}`);
}

/** The `size` bytes of native memory at `address` (a VirtualAlloc block), as an ArrayBuffer. */
export function memoryAt(address: number, size: number): ArrayBuffer {
  return koffi.view(address, size);
}
