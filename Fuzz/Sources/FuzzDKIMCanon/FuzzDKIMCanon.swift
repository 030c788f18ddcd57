/// Harness 9: DKIM relaxed canonicalization (RFC 6376 §3.4.2, §3.4.4) — `Relaxed` from
/// DKIM/RelaxedCanonicalization.swift (compiled into this module: the DKIM module itself
/// needs OpenSSL). A signature only survives transit if the canonical form ignores what
/// relays may change (white space, folding, trailing empty lines).
///
/// Input: byte 0 seeds the white-space changes; the rest is a message (header, empty
/// line, body).
///
/// Invariants:
/// - `split`: no trap; `bodyStart` is within the message; every field's value is a range
///   of the message; names have no trailing white space.
/// - `header`: the name lower-cased, then `:`, then the value without CR or LF, without
///   white space at either end and without runs of white space; the same output for the
///   value re-folded or with its white space runs changed.
/// - `body`: idempotent; empty or ending in exactly one CRLF after a line with content;
///   no line ends in white space or holds a run of white space; the same output when
///   relays add white space before line ends, change white space runs, or add empty
///   lines at the end.
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(bytes(data, size))
    var seed = UInt64(input.byte()) | 1
    let message = Array(input.rest)

    let (fields, bodyStart) = Relaxed.split(message)
    invariant(bodyStart >= 0 && bodyStart <= message.count, "bodyStart \(bodyStart) of \(message.count)")
    for field in fields {
        invariant(field.value.startIndex >= 0 && field.value.endIndex <= message.count, "a field value out of the message")
        invariant(field.name.utf8.last != 0x20 && field.name.utf8.last != 0x09, "field name with trailing white space \(show(field.name))")
        let canonical = Relaxed.header(name: field.name, value: field.value)
        checkHeader(canonical, name: field.name)
        let variant = Relaxed.header(name: field.name, value: rewhitespace(field.value, seed: &seed, fold: true)[...])
        invariant(variant == canonical, "header \(show(field.value)): \(show(canonical)), re-spaced: \(show(variant))")
    }

    let body = message[bodyStart...]
    let canonical = Relaxed.body(body)
    checkBody(canonical)
    invariant(Relaxed.body(canonical[...]) == canonical, "body canonicalization is not idempotent: \(show(canonical))")
    var variant = rewhitespace(body, seed: &seed, fold: false)
    for _ in 0..<(seed % 3) { variant += [0x0D, 0x0A] }
    let again = Relaxed.body(variant[...])
    invariant(again == canonical, "body \(show(body)) → \(show(canonical)); re-spaced \(show(variant)) → \(show(again))")
    return 0
}

func isWSP(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }

func next(_ seed: inout UInt64) -> UInt64 {
    seed = seed &* 6364136223846793005 &+ 1442695040888963407
    return seed >> 33
}

/// `bytes` with every run of white space replaced by another non-empty run, white space
/// added before some CRLFs, and (headers) some runs made a fold (CRLF + WSP).
func rewhitespace(_ bytes: ArraySlice<UInt8>, seed: inout UInt64, fold: Bool) -> [UInt8] {
    var out: [UInt8] = []
    var i = bytes.startIndex
    while i < bytes.endIndex {
        let b = bytes[i]
        if isWSP(b) {
            while i < bytes.endIndex, isWSP(bytes[i]) { i += 1 }
            if fold && next(&seed) % 4 == 0 { out += [0x0D, 0x0A] }
            for _ in 0...(next(&seed) % 3) { out.append(next(&seed) % 2 == 0 ? 0x20 : 0x09) }
            continue
        }
        if b == 0x0D, i + 1 < bytes.endIndex, bytes[i + 1] == 0x0A {
            if next(&seed) % 2 == 0 { out.append(0x20) }
            if fold {
                // A fold in a header value: CRLF stays followed by white space.
                out += [0x0D, 0x0A]
                i += 2
                if i >= bytes.endIndex || !isWSP(bytes[i]) { out.append(0x20) }
                continue
            }
        }
        out.append(b)
        i += 1
    }
    return out
}

func checkHeader(_ canonical: [UInt8], name: String) {
    let head = Array((name.lowercased() + ":").utf8)
    invariant(canonical.starts(with: head), "canonical header \(show(canonical)) does not start with \(show(head))")
    let value = canonical[head.count...]
    if !name.utf8.contains(0x0D) && !name.utf8.contains(0x0A) {
        invariant(!canonical.contains(0x0D) && !canonical.contains(0x0A), "CR/LF in canonical header \(show(canonical))")
    }
    invariant(value.first.map { !isWSP($0) } ?? true, "white space after the colon: \(show(canonical))")
    invariant(value.last.map { !isWSP($0) } ?? true, "trailing white space: \(show(canonical))")
    invariant(!value.contains(0x09), "tab in canonical header value \(show(canonical))")
    invariant(!zip(value, value.dropFirst()).contains { $0 == 0x20 && $1 == 0x20 }, "a run of spaces: \(show(canonical))")
}

func checkBody(_ canonical: [UInt8]) {
    guard !canonical.isEmpty else { return }
    invariant(canonical.suffix(2).elementsEqual([0x0D, 0x0A]), "canonical body without final CRLF: \(show(canonical))")
    let lines = crlfLines(canonical[...])
    invariant(lines.last.map { $0.count > 2 } ?? false, "canonical body ends in an empty line: \(show(canonical))")
    for line in lines {
        let content = line.dropLast(2)
        invariant(content.last.map { !isWSP($0) } ?? true, "canonical body line ends in white space: \(show(line))")
        invariant(!content.contains(0x09), "tab in canonical body line \(show(line))")
        invariant(!zip(content, content.dropFirst()).contains { $0 == 0x20 && $1 == 0x20 }, "a run of spaces in \(show(line))")
    }
}

@main
enum Harness {
    static func main() { runLibFuzzer(fuzz) }
}
