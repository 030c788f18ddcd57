/// Helpers shared by the harnesses: starting libFuzzer, turning its bytes into choices,
/// and checking invariants so that a violation is a crash libFuzzer records (with the
/// invariant's wording on stderr).
import CLibFuzzer

#if canImport(Glibc)
import Glibc
#endif

/// Runs libFuzzer's driver (its command line: corpus directories, `-runs=`,
/// `-max_total_time=`, …) on `testOneInput`, and exits with its status.
///
/// Each harness's `@main` calls this. SwiftPM links a Swift executable with
/// `--defsym main=<Module>_main`, so libFuzzer's own `main` is never the entry point;
/// `LLVMFuzzerRunDriver` is the documented way for a program with its own `main`.
public func runLibFuzzer(_ testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> Never {
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, testOneInput))
}

/// Traps with `message` when `condition` is false. libFuzzer catches the trap (a deadly
/// signal), prints the stack and writes the input as `crash-<sha1>`.
@inline(__always)
public func invariant(
    _ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
    file: StaticString = #fileID, line: UInt = #line
) {
    if !condition() {
        fatalError("invariant violated: \(message())", file: file, line: line)
    }
}

/// True when `HERALD_FUZZ_STRICT=1`: the harnesses then also check the invariants that
/// known, reported findings break (see `Fuzz/Reproducers/` and docs/reliability.md).
/// Off by default, so that a fuzzing run looks for new problems instead of stopping at a
/// known one every time.
public let strict: Bool = {
    guard let value = getenv("HERALD_FUZZ_STRICT") else { return false }
    return String(cString: value) == "1"
}()

/// The fuzzer's input as an array (libFuzzer may pass a null pointer with size 0).
public func bytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
    guard let data, size > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: size))
}

/// Reads choices from the front of the input; `rest` is what the harness parses. When
/// the input runs out every choice is 0, so short inputs still exercise the default path.
public struct FuzzInput {
    public private(set) var rest: ArraySlice<UInt8>

    public init(_ bytes: [UInt8]) { self.rest = bytes[...] }

    public mutating func byte() -> UInt8 { rest.popFirst() ?? 0 }

    public mutating func u16() -> Int { Int(byte()) << 8 | Int(byte()) }

    /// A value in `range`, from one or two bytes.
    public mutating func int(in range: ClosedRange<Int>) -> Int {
        let span = range.upperBound - range.lowerBound + 1
        let raw = span <= 256 ? Int(byte()) : u16()
        return range.lowerBound + raw % span
    }

    public mutating func bool() -> Bool { byte() & 1 == 1 }
}

/// `text` for a failure message: printable ASCII as is, everything else escaped, cut at
/// `limit` bytes.
public func show(_ bytes: some Sequence<UInt8>, limit: Int = 300) -> String {
    var out = ""
    var n = 0
    for b in bytes {
        if n == limit {
            out += "…"
            break
        }
        n += 1
        switch b {
        case 0x0D: out += "\\r"
        case 0x0A: out += "\\n"
        case 0x5C: out += "\\\\"
        case 0x20...0x7E: out.unicodeScalars.append(Unicode.Scalar(b))
        default:
            let hex = Array("0123456789abcdef".unicodeScalars)
            out += "\\x"
            out.unicodeScalars.append(hex[Int(b >> 4)])
            out.unicodeScalars.append(hex[Int(b & 0xF)])
        }
    }
    return "\"" + out + "\""
}

public func show(_ text: String, limit: Int = 300) -> String { show(text.utf8, limit: limit) }

/// Whether `needle` occurs in `haystack` (a plain search; the inputs are fuzzer-sized).
public func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    if needle.isEmpty { return true }
    if needle.count > haystack.count { return false }
    return haystack.withUnsafeBufferPointer { h in
        needle.withUnsafeBufferPointer { n in
            let first = n[0]
            var i = 0
            let last = h.count - n.count
            while i <= last {
                if h[i] == first {
                    var k = 1
                    while k < n.count && h[i + k] == n[k] { k += 1 }
                    if k == n.count { return true }
                }
                i += 1
            }
            return false
        }
    }
}

/// Splits `bytes` after every CRLF; the last piece may lack one.
public func crlfLines(_ bytes: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
    var lines: [ArraySlice<UInt8>] = []
    var start = bytes.startIndex
    var i = bytes.startIndex
    while i < bytes.endIndex {
        if bytes[i] == 0x0D, i + 1 < bytes.endIndex, bytes[i + 1] == 0x0A {
            lines.append(bytes[start..<(i + 2)])
            i += 2
            start = i
        } else {
            i += 1
        }
    }
    if start < bytes.endIndex { lines.append(bytes[start...]) }
    return lines
}
