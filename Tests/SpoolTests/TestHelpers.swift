import Foundation
import HeraldTestSupport

@testable import Spool

/// Every regular file under `directory`, as paths relative to it, sorted.
func filesUnder(_ directory: String) -> [String] {
    guard let enumerator = FileManager.default.enumerator(atPath: directory) else { return [] }
    var files: [String] = []
    while let relative = enumerator.nextObject() as? String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory + "/" + relative, isDirectory: &isDirectory),
            !isDirectory.boolValue
        {
            files.append(relative)
        }
    }
    return files.sorted()
}

func fileExists(_ path: String) -> Bool {
    FileManager.default.fileExists(atPath: path)
}

func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

func readFile(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

func rename(_ from: String, _ to: String) throws {
    try FileManager.default.createDirectory(
        atPath: (to as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try FileManager.default.moveItem(atPath: from, toPath: to)
}

/// Stores a distinct message and returns its id, envelope and bytes.
@discardableResult
func storeSample(_ spool: Spool, tag: String = "sample", size: Int = 2048, arrival: Date = Date()) async throws
    -> (QueueID, Envelope, [UInt8])
{
    let message = SpoolFixtures.message(tag: tag, size: size)
    let stored = try await spool.store(
        message: message, envelope: SpoolFixtures.envelope(id: .generate(now: arrival), arrival: arrival))
    return (stored.id, stored, message)
}
