import ArgumentParser
import Foundation
import Spool

struct QueueShow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Print one message: envelope, headers and body (or only the part asked for).")
    @OptionGroup var options: ConfigOption
    @Argument(help: "Queue id.") var id: String
    @Flag(help: "Only the envelope (JSON).") var envelope = false
    @Flag(help: "Only the header section.") var headers = false
    @Flag(help: "Only the body.") var body = false

    func run() throws {
        let access = try SpoolAccess(options)
        let (qid, q) = access.resolve(id)
        let env: Envelope
        let message: [UInt8]
        do {
            env = try access.spool.loadEnvelope(qid, in: q)
            message = try access.spool.loadMessage(qid, in: q, envelope: env)
        } catch let error as SpoolError where error.isNotFound {
            fail("\(id): no such message")
        }
        let envelopeText = String(decoding: try EnvelopeCoding.encode(env), as: UTF8.self)
        let split = Self.headerEnd(message)
        let headerPart = message[..<split.headers]
        let bodyPart = message[split.body...]
        let out = FileHandle.standardOutput
        switch (envelope, headers, body) {
        case (false, false, false):
            out.write(Data("*** ENVELOPE (\(q.rawValue)) ***\n\(envelopeText)\n*** MESSAGE ***\n".utf8))
            out.write(Data(message))
        default:
            if envelope { out.write(Data((envelopeText + "\n").utf8)) }
            if headers { out.write(Data(headerPart)) }
            if body { out.write(Data(bodyPart)) }
        }
    }

    /// Index where the header section ends (before the empty line) and where the body starts.
    static func headerEnd(_ m: [UInt8]) -> (headers: Int, body: Int) {
        var i = 0
        while i + 1 < m.count {
            if m[i] == 0x0D && m[i + 1] == 0x0A {
                if i + 3 < m.count && m[i + 2] == 0x0D && m[i + 3] == 0x0A { return (i + 2, i + 4) }
                if i == 0 { return (0, 2) }
            }
            i += 1
        }
        return (m.count, m.count)
    }
}
