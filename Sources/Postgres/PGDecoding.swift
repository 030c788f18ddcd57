/// A column that does not hold what the code reading it expects (NULL where a value must
/// be, text that is not a number or a timestamp): a schema and code out of step, raised
/// instead of read as 0 or 1970.
public struct PGDecodingError: Error, Sendable, CustomStringConvertible, Equatable {
    public var column: Int
    public var type: String
    /// Whether the column was NULL (the value itself is not kept: it may be personal data).
    public var wasNull: Bool

    public var description: String {
        "column \(column) is \(wasNull ? "NULL" : "not a valid \(type)") where a \(type) was expected"
    }
}

extension PGText {
    /// Column `column` of `row` decoded with `decode` (e.g. ``int64(_:)``), or a
    /// ``PGDecodingError`` when it is NULL or does not decode.
    public static func require<T>(_ row: [String?], _ column: Int, _ decode: (String) -> T?,
                                  as type: String = "\(T.self)") throws(PGDecodingError) -> T {
        guard column < row.count, let text = row[column] else {
            throw PGDecodingError(column: column, type: type, wasNull: true)
        }
        guard let value = decode(text) else { throw PGDecodingError(column: column, type: type, wasNull: false) }
        return value
    }

    /// Column `column` of `row` decoded with `decode`, nil when it is NULL (a column that
    /// may be empty), or a ``PGDecodingError`` when `decode` returns nil or throws (its
    /// error is not kept: it may quote the value).
    public static func optional<T>(_ row: [String?], _ column: Int, _ decode: (String) throws -> T?,
                                   as type: String = "\(T.self)") throws(PGDecodingError) -> T? {
        guard column < row.count, let text = row[column] else { return nil }
        guard let value = try? decode(text) else { throw PGDecodingError(column: column, type: type, wasNull: false) }
        return value
    }

    /// Column `column` of `row` as text, or a ``PGDecodingError`` when it is NULL.
    public static func require(_ row: [String?], _ column: Int) throws(PGDecodingError) -> String {
        try require(row, column, { $0 }, as: "text")
    }
}
