// The one place that decides what the shell is built on: the C library, Dispatch, and
// FoundationEssentials, never full Foundation (it brings ICU and ~6 MiB of RSS, docs/benchmarks.md).
// Every file of the agent and the CLI imports this module instead of repeating the three.
// Only Linux is built (Package.swift); a port adds its C library here, behind the same names
// (LibC.swift's `sys*` calls, the probes' protocols).
@_exported import Glibc
@_exported import Dispatch
@_exported import FoundationEssentials
