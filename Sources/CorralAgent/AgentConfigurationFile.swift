/// One `key = value` line of corral.conf(5).
///
/// The format: one setting per line, `key = value`; blanks around the key and the value are
/// ignored; a line whose first non-blank character is `#` is a comment; blank lines are
/// ignored. A `#` after a value is part of the value (no trailing comments), and a value may
/// be wrapped in double quotes to keep leading or trailing blanks. Keys are corrald's flags
/// without their dashes.
public struct ConfigFileEntry: Sendable, Equatable {
    public var line: Int
    public var key: String
    public var value: String

    public struct SyntaxError: Error, Equatable {
        public var line: Int
        public var problem: String
    }

    public static func parse(_ text: String) throws(SyntaxError) -> [ConfigFileEntry] {
        var entries: [ConfigFileEntry] = []
        var number = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            var line = Substring(raw)
            if line.hasSuffix("\r") { line = line.dropLast() }
            let trimmed = line.trimmingBlanks
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            guard let equals = trimmed.firstIndex(of: "=") else {
                throw SyntaxError(line: number, problem: "expected key = value, not \(trimmed)")
            }
            let key = trimmed[..<equals].trimmingBlanks
            var value = trimmed[trimmed.index(after: equals)...].trimmingBlanks
            guard !key.isEmpty else { throw SyntaxError(line: number, problem: "a setting needs a key before the =") }
            guard key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) else {
                throw SyntaxError(line: number, problem: "bad key \(key): keys are letters, digits and dashes, like link-mbps")
            }
            if value.hasPrefix("\"") {
                guard value.count >= 2, value.hasSuffix("\"") else {
                    throw SyntaxError(line: number, problem: "key \(key): the value's opening quote is not closed")
                }
                value = value.dropFirst().dropLast()
            }
            guard !value.isEmpty else { throw SyntaxError(line: number, problem: "key \(key) needs a value (delete the line to keep the default)") }
            entries.append(ConfigFileEntry(line: number, key: String(key), value: String(value)))
        }
        return entries
    }
}

extension Substring {
    fileprivate var trimmingBlanks: Substring {
        var s = self
        while let first = s.first, first == " " || first == "\t" { s = s.dropFirst() }
        while let last = s.last, last == " " || last == "\t" { s = s.dropLast() }
        return s
    }
}
