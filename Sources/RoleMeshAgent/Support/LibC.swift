#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The C library's calls under names no type here shadows. Inside a type with a `close()`,
// `read()` or `send()` method (AsyncFD, ControlClient, ControlConnection...) the plain C name
// means the method, and `Glibc.close` would name one platform's module; these are the same
// calls on Linux and macOS, found by their plain names at file scope.

@discardableResult @inline(__always)
func sysClose(_ fd: Int32) -> Int32 { close(fd) }

@inline(__always)
func sysRead(_ fd: Int32, _ buf: UnsafeMutableRawPointer?, _ count: Int) -> Int { read(fd, buf, count) }

@inline(__always)
func sysWrite(_ fd: Int32, _ buf: UnsafeRawPointer?, _ count: Int) -> Int { write(fd, buf, count) }

@inline(__always)
func sysSend(_ fd: Int32, _ buf: UnsafeRawPointer?, _ count: Int, _ flags: Int32) -> Int { send(fd, buf, count, flags) }

@inline(__always)
func sysConnect(_ fd: Int32, _ addr: UnsafePointer<sockaddr>, _ len: socklen_t) -> Int32 { connect(fd, addr, len) }

@discardableResult @inline(__always)
func sysShutdown(_ fd: Int32, _ how: Int32) -> Int32 { shutdown(fd, how) }

@inline(__always)
func sysPipe(_ fds: UnsafeMutablePointer<Int32>) -> Int32 { pipe(fds) }

// Socket types: an enum in Glibc (hence `.rawValue`), a plain Int32 in Darwin.
#if canImport(Glibc)
let sockStream = Int32(SOCK_STREAM.rawValue)
let sockDgram = Int32(SOCK_DGRAM.rawValue)
#else
let sockStream = SOCK_STREAM
let sockDgram = SOCK_DGRAM
#endif
