import CampaignStore
import Foundation
import Hummingbird
import NIOCore

/// `POST /v1/lists/{id}/import` with `Content-Type: text/csv`: the upload is streamed,
/// chunk by chunk as it arrives, into ``SubscriberStore/importCSV(tenant:listID:from:maxListedRejections:)``
/// (COPY into PostgreSQL, then one upsert), so a file of a million rows never sits in
/// memory. The header row names the columns: `email` (required), `first_name`,
/// `last_name`, `name`; every other column becomes a string attribute.
///
/// The import is one transaction: it either lands whole (valid lines) or not at all.
/// 200 with `{"rows", "imported", "created", "updated", "unchanged", "added_to_list",
/// "rejected_count", "rejected": [{"line", "reason", "email"}], "rejected_truncated"}`:
/// `imported = created + updated + unchanged` (the lines taken), `rejected` lists the
/// first ``maxListedRejections`` rejected lines (invalid address, duplicate of an
/// earlier line, too many fields, bad UTF-8) with their 1-based line numbers (the
/// header is line 1). 415 for a body that is not `text/csv`; 422 for a file without a
/// header row naming an email column; 404 for a list of another tenant.
public struct ImportV1: Sendable {
    public static let maxListedRejections = 1000

    struct Report: Encodable, ResponseEncodable {
        struct Rejection: Encodable {
            var line: Int
            var reason: String
            var email: String?

            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(line, forKey: .line)
                try c.encode(reason, forKey: .reason)
                try c.encode(email, forKey: .email)
            }

            enum CodingKeys: String, CodingKey { case line, reason, email }
        }

        var list_id: Int64
        var rows: Int
        var imported: Int
        var created: Int
        var updated: Int
        var unchanged: Int
        var added_to_list: Int
        var rejected_count: Int
        var rejected: [Rejection]
        var rejected_truncated: Bool
    }

    let stores: HTTPStores

    public init(stores: HTTPStores) { self.stores = stores }

    /// Whether the Content-Type is `text/csv` (parameters such as `charset` allowed).
    static func isCSV(_ contentType: String?) -> Bool {
        guard let contentType else { return false }
        let media = contentType.split(separator: ";", maxSplits: 1).first ?? ""
        return media.trimmingCharacters(in: .whitespaces).lowercased() == "text/csv"
    }

    public func add(to group: RouterGroup<HeraldRequestContext>) {
        let subscribers = stores.subscribers
        group.post("lists/:id/import") { request, context -> Report in
            let tenant = try context.databaseTenant()
            let listID = try APIInput.id(context, "id", what: "list")
            guard Self.isCSV(request.headers[.contentType]) else {
                throw Problem(.unsupportedMediaType,
                              "Send the file as the body with Content-Type: text/csv (got \(request.headers[.contentType].map { "\"\($0)\"" } ?? "none")); "
                                  + "its header row must name an email column.")
            }
            let body = DrainableBody(request.body)
            let report: ImportReport
            do {
                guard let r = try await subscribers.importCSV(tenant: tenant, listID: listID,
                                                              from: body.map { $0.readableBytesView },
                                                              maxListedRejections: Self.maxListedRejections)
                else { throw Problem.notFound("list \(listID)") }
                report = r
            } catch {
                // The client is still sending the file: read the rest before answering, so
                // that a client which reads the reply only once it has sent everything
                // gets it, instead of a connection stuck or reset under its upload.
                await body.drain()
                if let error = error as? StoreError {
                    throw Problem.unprocessable("The CSV file cannot be imported, nothing was: \(error.message)")
                }
                throw error
            }
            let imported = report.created + report.updated + report.unchanged
            context.logger.info("csv import", metadata: [
                "list": "\(listID)", "rows": "\(report.rows)", "imported": "\(imported)", "rejected": "\(report.rejected)",
            ])
            return Report(list_id: listID, rows: report.rows, imported: imported, created: report.created,
                          updated: report.updated, unchanged: report.unchanged, added_to_list: report.addedToList,
                          rejected_count: report.rejected,
                          rejected: report.rejections.map { Report.Rejection(line: $0.line, reason: $0.reason, email: $0.email) },
                          rejected_truncated: report.rejectionsTruncated)
        }
    }
}

/// A request body read through one iterator, so that what a consumer left unread when it
/// stopped can still be read (and thrown away) by ``drain()``.
final class DrainableBody: AsyncSequence, @unchecked Sendable {
    typealias Element = ByteBuffer
    private var iterator: RequestBody.AsyncIterator

    init(_ body: RequestBody) {
        iterator = body.makeAsyncIterator()
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        let body: DrainableBody
        mutating func next() async throws -> ByteBuffer? { try await body.iterator.next() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(body: self) }

    /// Reads what is left, discarding it; stops at the end or at the first error.
    func drain() async {
        while (try? await iterator.next()) != nil {}
    }
}
