import Foundation
import Rendering

/// A campaign's segment: a filter on subscribers' attributes, on top of list membership.
///
/// JSON form (`"segment"` of a campaign), a tree of groups and conditions:
/// ```json
/// {"all": [{"attribute": "plan", "op": "eq", "value": "gold"},
///          {"any": [{"attribute": "age", "op": "gte", "value": 30},
///                   {"attribute": "vip", "op": "exists"}]}]}
/// ```
/// A group is `{"all": [...]}` (every member holds) or `{"any": [...]}` (at least one).
/// A condition names a top-level `attribute` and an `op`:
/// - `eq`, `ne`: equal / not equal to `value` (string, number, boolean); `ne` also holds
///   when the attribute is missing;
/// - `in`, `not_in`: `value` is an array of such values;
/// - `gt`, `gte`, `lt`, `lte`: numeric or string comparison with `value`;
/// - `exists`, `not_exists`: the attribute is present (any value) or not;
/// - `starts_with`: the string attribute starts with the string `value`.
/// A comparison with a value of another type (`"age": "30"` against `gte 30`) does not hold.
///
/// The segment is compiled to a PostgreSQL `jsonpath` predicate (stored next to the JSON
/// in `campaigns.segment_path`) and applied as `s.attributes @@ segment_path` wherever the
/// campaign's recipients are computed, so planning, expansion and replays all see the
/// same set. Every name and value is written as a JSON string literal, so nothing in a
/// segment can change the shape of the predicate.
public indirect enum Segment: Sendable, Equatable {
    case all([Segment])
    case any([Segment])
    case condition(attribute: String, op: Operator, value: Value?)

    public enum Operator: String, Sendable, CaseIterable {
        case eq, ne, `in`, not_in, gt, gte, lt, lte, exists, not_exists, starts_with
    }

    public enum Value: Sendable, Equatable {
        case string(String)
        case number(Double)
        case bool(Bool)
        case list([Value])
    }

    /// Limits: a segment is a filter, not a program.
    public static let maxConditions = 100
    public static let maxDepth = 5

    /// Parses the JSON form (as decoded from a request or the `segment` column); the
    /// error message names the path of the offending part (`segment.all[1].op: …`).
    public init(_ json: TemplateValue) throws(StoreError) {
        var count = 0
        self = try Self.parse(json, path: "segment", depth: 1, count: &count)
    }

    /// Parses the stored JSON text.
    public init(jsonText: String) throws(StoreError) {
        guard let value = try? JSONDecoder().decode(TemplateValue.self, from: Data(jsonText.utf8)) else {
            throw StoreError(.invalid, "segment: not valid JSON")
        }
        try self.init(value)
    }

    private static func parse(_ json: TemplateValue, path: String, depth: Int,
                              count: inout Int) throws(StoreError) -> Segment {
        guard case .object(let dict) = json else {
            throw StoreError(.invalid, "\(path): expected an object with \"all\", \"any\" or \"attribute\"")
        }
        guard depth <= maxDepth else { throw StoreError(.invalid, "\(path): groups nest at most \(maxDepth) deep") }
        if dict["all"] != nil || dict["any"] != nil {
            let key = dict["all"] != nil ? "all" : "any"
            guard dict.count == 1 else {
                throw StoreError(.invalid, "\(path): a group has exactly one key, \"all\" or \"any\"")
            }
            guard case .array(let members)? = dict[key], !members.isEmpty else {
                throw StoreError(.invalid, "\(path).\(key): expected a non-empty array")
            }
            var parsed: [Segment] = []
            for (i, member) in members.enumerated() {
                parsed.append(try parse(member, path: "\(path).\(key)[\(i)]", depth: depth + 1, count: &count))
            }
            return key == "all" ? .all(parsed) : .any(parsed)
        }
        count += 1
        guard count <= maxConditions else { throw StoreError(.invalid, "segment: at most \(maxConditions) conditions") }
        if let unknown = dict.keys.sorted().first(where: { !["attribute", "op", "value"].contains($0) }) {
            throw StoreError(.invalid, "\(path).\(unknown): unknown key (a condition has attribute, op, value)")
        }
        guard case .string(let attribute)? = dict["attribute"], !attribute.isEmpty, attribute.utf8.count <= 200 else {
            throw StoreError(.invalid, "\(path).attribute: expected an attribute name (1 to 200 octets)")
        }
        guard case .string(let opText)? = dict["op"], let op = Operator(rawValue: opText) else {
            let names = Operator.allCases.map(\.rawValue).joined(separator: ", ")
            throw StoreError(.invalid, "\(path).op: expected one of \(names)")
        }
        let raw = dict["value"]
        switch op {
        case .exists, .not_exists:
            guard raw == nil || raw == .null else {
                throw StoreError(.invalid, "\(path).value: \(op.rawValue) takes no value")
            }
            return .condition(attribute: attribute, op: op, value: nil)
        case .in, .not_in:
            guard case .array(let items)? = raw, !items.isEmpty, items.count <= 1000 else {
                throw StoreError(.invalid, "\(path).value: \(op.rawValue) takes an array of 1 to 1000 values")
            }
            var values: [Value] = []
            for (i, item) in items.enumerated() {
                values.append(try scalar(item, path: "\(path).value[\(i)]"))
            }
            return .condition(attribute: attribute, op: op, value: .list(values))
        case .starts_with:
            guard case .string(let text)? = raw else {
                throw StoreError(.invalid, "\(path).value: starts_with takes a string")
            }
            return .condition(attribute: attribute, op: op, value: .string(text))
        case .eq, .ne, .gt, .gte, .lt, .lte:
            guard let raw, raw != .null else { throw StoreError(.invalid, "\(path).value: \(op.rawValue) needs a value") }
            let value = try scalar(raw, path: "\(path).value")
            if case .bool = value, ![.eq, .ne].contains(op) {
                throw StoreError(.invalid, "\(path).value: \(op.rawValue) compares numbers or strings, not booleans")
            }
            return .condition(attribute: attribute, op: op, value: value)
        }
    }

    private static func scalar(_ raw: TemplateValue, path: String) throws(StoreError) -> Value {
        switch raw {
        case .bool(let b): return .bool(b)
        case .int(let i): return .number(Double(i))
        case .double(let d):
            guard d.isFinite else { throw StoreError(.invalid, "\(path): not a finite number") }
            return .number(d)
        case .string(let s):
            guard s.utf8.count <= 1000 else { throw StoreError(.invalid, "\(path): longer than 1000 octets") }
            return .string(s)
        default:
            throw StoreError(.invalid, "\(path): expected a string, number or boolean")
        }
    }

    // MARK: - JSON form (stored, and returned by the API)

    public var json: TemplateValue {
        switch self {
        case .all(let members): return .object(["all": .array(members.map(\.json))])
        case .any(let members): return .object(["any": .array(members.map(\.json))])
        case .condition(let attribute, let op, let value):
            var object: [String: TemplateValue] = ["attribute": .string(attribute), "op": .string(op.rawValue)]
            if let value { object["value"] = Self.json(value) }
            return .object(object)
        }
    }

    private static func json(_ value: Value) -> TemplateValue {
        switch value {
        case .string(let s): return .string(s)
        case .number(let d): return d.rounded() == d && abs(d) < 1e15 ? .int(Int(d)) : .double(d)
        case .bool(let b): return .bool(b)
        case .list(let items): return .array(items.map(json))
        }
    }

    public var jsonText: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(json)) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    // MARK: - jsonpath

    /// The PostgreSQL `jsonpath` predicate over a subscriber's `attributes` object.
    public var jsonPath: String {
        switch self {
        case .all(let members): return "(" + members.map(\.jsonPath).joined(separator: " && ") + ")"
        case .any(let members): return "(" + members.map(\.jsonPath).joined(separator: " || ") + ")"
        case .condition(let attribute, let op, let value):
            let path = "$." + Self.literal(.string(attribute))
            switch (op, value) {
            case (.exists, _): return "exists(\(path))"
            case (.not_exists, _): return "!exists(\(path))"
            case (.eq, let v?): return "(\(path) == \(Self.literal(v)))"
            case (.ne, let v?): return "!(\(path) == \(Self.literal(v)))"
            case (.gt, let v?): return "(\(path) > \(Self.literal(v)))"
            case (.gte, let v?): return "(\(path) >= \(Self.literal(v)))"
            case (.lt, let v?): return "(\(path) < \(Self.literal(v)))"
            case (.lte, let v?): return "(\(path) <= \(Self.literal(v)))"
            case (.starts_with, let v?): return "(\(path) starts with \(Self.literal(v)))"
            case (.in, .list(let items)?):
                return "(" + items.map { "\(path) == \(Self.literal($0))" }.joined(separator: " || ") + ")"
            case (.not_in, .list(let items)?):
                return "!(" + items.map { "\(path) == \(Self.literal($0))" }.joined(separator: " || ") + ")"
            default:
                return "false"
            }
        }
    }

    /// A jsonpath literal: strings as double-quoted JSON strings with every control
    /// character, quote and backslash escaped; numbers in plain decimal.
    static func literal(_ value: Value) -> String {
        switch value {
        case .bool(let b): return b ? "true" : "false"
        case .number(let d):
            if d.rounded() == d && abs(d) < 1e15 { return String(Int64(d)) }
            return String(format: "%.17g", d).replacingOccurrences(of: "e+", with: "e")
        case .list(let items): return "[" + items.map(literal).joined(separator: ", ") + "]"
        case .string(let s):
            var out = "\""
            for scalar in s.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                    out += String(format: "\\u%04x", scalar.value)
                default: out.unicodeScalars.append(scalar)
                }
            }
            return out + "\""
        }
    }
}
