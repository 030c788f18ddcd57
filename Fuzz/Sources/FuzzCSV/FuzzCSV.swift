/// Harness 7: subscriber imports — `CSVReader` from CampaignStore/CSVReader.swift
/// (compiled into this module: CampaignStore itself needs libpq), the incremental RFC 4180
/// reader behind `POST …/import`.
///
/// Input: byte 0 picks `maxRecordBytes`, bytes 1-2 a split point, byte 3 the line ending
/// of the encoded table; the rest is the CSV file. The same rest, cut into records at
/// 0x1E and fields at 0x1F, is also a table to encode as CSV and read back.
///
/// Invariants:
/// - Chunking does not matter: one chunk, two chunks split at a fuzzer-chosen point, or
///   byte by byte give the same records (line, fields, problem).
/// - Records have at least one field, start on non-decreasing 1-based lines, and (without
///   a problem) hold at most `maxRecordBytes` octets of fields.
/// - A file without quotes, CR or byte-order mark reads as its non-blank lines split at
///   commas, each on its own line number.
/// - Round trip: any table written as RFC 4180 CSV (fields quoted when they hold a comma,
///   quote, CR or LF, or could be taken for a blank line or a byte-order mark) reads back
///   as the same fields, with no problem, each record on the line it starts on.
import FuzzSupport

struct Record: Equatable, CustomStringConvertible {
    var line: Int
    var fields: [[UInt8]]
    var problem: String?

    var description: String {
        "\(line): \(fields.map { show($0, limit: 40) })\(problem.map { " (\($0))" } ?? "")"
    }
}

func read(_ stream: [UInt8], pieces: [Range<Int>], maxRecordBytes: Int) -> [Record] {
    var reader = CSVReader(maxRecordBytes: maxRecordBytes)
    var records: [Record] = []
    stream.withUnsafeBufferPointer { buffer in
        for piece in pieces {
            let chunk = UnsafeBufferPointer(rebasing: buffer[piece])
            reader.feed(chunk) { records.append(Record(line: $0.line, fields: $0.fields.map { Array($0) }, problem: $0.problem)) }
        }
    }
    reader.finish { records.append(Record(line: $0.line, fields: $0.fields.map { Array($0) }, problem: $0.problem)) }
    return records
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(bytes(data, size))
    let limitChoice = input.byte()
    let maxRecordBytes = limitChoice >= 0x80 ? 65_536 : 1 + Int(limitChoice) * 2
    let split = input.u16()
    let lineEnding: [UInt8] = input.bool() ? [0x0D, 0x0A] : [0x0A]
    let stream = Array(input.rest)
    let n = stream.count
    let cut = n == 0 ? 0 : split % (n + 1)

    let whole = read(stream, pieces: [0..<n], maxRecordBytes: maxRecordBytes)
    let halves = read(stream, pieces: [0..<cut, cut..<n], maxRecordBytes: maxRecordBytes)
    invariant(whole == halves, "split at \(cut): \(halves) vs one chunk: \(whole)")
    let bytewise = read(stream, pieces: (0..<n).map { $0..<($0 + 1) }, maxRecordBytes: maxRecordBytes)
    invariant(whole == bytewise, "byte by byte: \(bytewise) vs one chunk: \(whole)")

    var previous = 1
    for r in whole {
        invariant(!r.fields.isEmpty || r.problem != nil, "a record without fields: \(r)")
        invariant(r.line >= previous, "record lines go back: \(whole)")
        previous = r.line
        if r.problem == nil {
            let total = r.fields.reduce(0) { $0 + $1.count }
            invariant(total <= maxRecordBytes, "a record of \(total) octets with limit \(maxRecordBytes) and no problem")
        }
    }

    // Plain files: lines and commas.
    if maxRecordBytes == 65_536, !stream.contains(0x22), !stream.contains(0x0D), stream.first != 0xEF {
        var expected: [Record] = []
        for (index, line) in stream.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            let fields = line.split(separator: 0x2C, omittingEmptySubsequences: false).map(Array.init)
            expected.append(Record(line: index + 1, fields: fields, problem: nil))
        }
        invariant(whole == expected, "plain CSV \(show(stream)) read as \(whole), expected \(expected)")
    }

    // Round trip of a table.
    guard !stream.isEmpty else { return 0 }
    let table = stream.split(separator: 0x1E, omittingEmptySubsequences: false).map { record in
        record.split(separator: 0x1F, omittingEmptySubsequences: false).map(Array.init)
    }
    var csv: [UInt8] = []
    var expected: [Record] = []
    for (index, record) in table.enumerated() {
        let line = 1 + csv.filter { $0 == 0x0A }.count
        expected.append(Record(line: line, fields: record, problem: nil))
        for (k, field) in record.enumerated() {
            if k > 0 { csv.append(0x2C) }
            let quote = field.contains(where: { [0x2C, 0x22, 0x0D, 0x0A].contains($0) })
                || (record.count == 1 && field.isEmpty) || (index == 0 && k == 0 && field.first == 0xEF)
            if quote {
                csv.append(0x22)
                for b in field {
                    if b == 0x22 { csv.append(0x22) }
                    csv.append(b)
                }
                csv.append(0x22)
            } else {
                csv += field
            }
        }
        if index < table.count - 1 || lineEnding.count == 2 { csv += lineEnding }
    }
    let back = read(csv, pieces: [0..<csv.count], maxRecordBytes: 1 << 20)
    invariant(back == expected, "table \(expected) written as \(show(csv)) read back as \(back)")
    return 0
}

@main
enum Harness {
    static func main() { runLibFuzzer(fuzz) }
}
