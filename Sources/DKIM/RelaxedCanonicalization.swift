/// RFC 6376 §3.4 "relaxed" canonicalization, for headers and for the body, over the
/// message's bytes (lines end in CRLF, as the spool holds them).
enum Relaxed {
    static let cr: UInt8 = 13, lf: UInt8 = 10, space: UInt8 = 32, tab: UInt8 = 9, colon: UInt8 = 58

    static func isWSP(_ b: UInt8) -> Bool { b == space || b == tab }

    /// One header field as it stands in the message: its name and everything after the
    /// colon, continuation lines included (without the final CRLF).
    struct Field {
        var name: String
        var value: ArraySlice<UInt8>

        var lowercasedName: String { name.lowercased() }
    }

    /// The message's header fields in order, and where its body starts (after the empty
    /// line; the end when there is none).
    static func split(_ message: [UInt8]) -> (fields: [Field], bodyStart: Int) {
        var fields: [Field] = []
        var i = 0
        let n = message.count
        while i < n {
            // An empty line ends the header.
            if message[i] == cr, i + 1 < n, message[i + 1] == lf { return (fields, i + 2) }
            // One field: up to a CRLF not followed by WSP.
            let start = i
            var end = i
            while end < n {
                if message[end] == cr, end + 1 < n, message[end + 1] == lf {
                    if end + 2 < n, isWSP(message[end + 2]) {
                        end += 2
                        continue
                    }
                    break
                }
                end += 1
            }
            let line = message[start..<end]
            if let colon = line.firstIndex(of: colon) {
                var nameEnd = colon
                while nameEnd > start, isWSP(message[nameEnd - 1]) { nameEnd -= 1 }
                let name = String(decoding: message[start..<nameEnd], as: UTF8.self)
                fields.append(Field(name: name, value: message[(colon + 1)..<end]))
            }
            i = min(n, end + 2)
        }
        return (fields, n)
    }

    /// `name:value` with the name in lower case, the value unfolded, runs of WSP made one
    /// space and WSP at both ends of the value removed; without a line end.
    static func header(name: String, value: ArraySlice<UInt8>) -> [UInt8] {
        var out = Array(name.lowercased().utf8)
        out.append(colon)
        var pendingSpace = false, started = false
        for b in value {
            if b == cr || b == lf { continue }
            if isWSP(b) {
                pendingSpace = true
                continue
            }
            if pendingSpace && started { out.append(space) }
            pendingSpace = false
            started = true
            out.append(b)
        }
        return out
    }

    /// The body: WSP at line ends removed, runs of WSP made one space, empty lines at the
    /// end removed, and a CRLF after the last line (an empty body stays empty).
    static func body(_ body: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(body.count)
        // Where `out` ends with the last line that had content (trailing empty lines are
        // only kept once another non-empty line follows).
        var committed = 0
        var line: [UInt8] = []
        var pendingSpace = false

        func endLine() {
            out.append(contentsOf: line)
            out.append(cr)
            out.append(lf)
            if !line.isEmpty { committed = out.count }
            line.removeAll(keepingCapacity: true)
            pendingSpace = false
        }

        var i = body.startIndex
        while i < body.endIndex {
            let b = body[i]
            if b == cr, i + 1 < body.endIndex, body[i + 1] == lf {
                endLine()
                i += 2
                continue
            }
            if isWSP(b) {
                pendingSpace = true
            } else {
                if pendingSpace { line.append(space) }
                pendingSpace = false
                line.append(b)
            }
            i += 1
        }
        if !line.isEmpty { endLine() }
        out.removeSubrange(committed...)
        return out
    }
}
