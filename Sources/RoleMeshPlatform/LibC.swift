import Glibc

// The C library's calls under names no type here shadows. Inside a type with a `close()`,
// `read()` or `send()` method (AsyncFD, ControlClient, ControlConnection...) the plain C name
// means the method, and `Glibc.close` would name one platform's module; these are the same
// calls on Linux and macOS, found by their plain names at file scope.

@discardableResult @inline(__always)
public func sysClose(_ fd: Int32) -> Int32 { close(fd) }

@inline(__always)
public func sysRead(_ fd: Int32, _ buf: UnsafeMutableRawPointer?, _ count: Int) -> Int { read(fd, buf, count) }

@inline(__always)
public func sysWrite(_ fd: Int32, _ buf: UnsafeRawPointer?, _ count: Int) -> Int { write(fd, buf, count) }

@inline(__always)
public func sysSend(_ fd: Int32, _ buf: UnsafeRawPointer?, _ count: Int, _ flags: Int32) -> Int { send(fd, buf, count, flags) }

@inline(__always)
public func sysConnect(_ fd: Int32, _ addr: UnsafePointer<sockaddr>, _ len: socklen_t) -> Int32 { connect(fd, addr, len) }

@discardableResult @inline(__always)
public func sysShutdown(_ fd: Int32, _ how: Int32) -> Int32 { shutdown(fd, how) }

@inline(__always)
public func sysPipe(_ fds: UnsafeMutablePointer<Int32>) -> Int32 { pipe(fds) }

// Socket types: an enum in Glibc (hence `.rawValue`), a plain Int32 in Darwin.
public let sockStream = Int32(SOCK_STREAM.rawValue)
public let sockDgram = Int32(SOCK_DGRAM.rawValue)
