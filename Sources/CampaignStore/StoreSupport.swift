import Foundation

/// A tenant's id. A distinct type, so that every store method visibly takes the tenant
/// it is scoped to and a list id cannot be passed where a tenant id is due.
public struct TenantID: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public var rawValue: Int64
    public init(rawValue: Int64) { self.rawValue = rawValue }
    public init(_ rawValue: Int64) { self.rawValue = rawValue }
    public var description: String { String(rawValue) }
    /// The SQL parameter.
    public var parameter: String { String(rawValue) }

    public init(from decoder: Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(Int64.self)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// A store call the caller can fix: bad input or a conflict with existing data.
/// (Database and connection failures are ``PostgresError``s.) The HTTP API maps each
/// kind to a status.
public struct StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The input is not acceptable.
        case invalid
        /// It clashes with what exists, e.g. a tenant name in use.
        case conflict
        /// The thing it names does not exist for this tenant.
        case notFound
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// Checks of names people give things (tenants, lists, campaigns).
enum NameRules {
    /// Trimmed; non-empty, at most `limit` characters, no control characters.
    static func validate(_ name: String, what: String, limit: Int) throws(StoreError) -> String {
        let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw StoreError(.invalid, "\(what) must not be empty") }
        guard trimmed.count <= limit else { throw StoreError(.invalid, "\(what) is longer than \(limit) characters") }
        guard !trimmed.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw StoreError(.invalid, "\(what) contains a control character")
        }
        return trimmed
    }
}
