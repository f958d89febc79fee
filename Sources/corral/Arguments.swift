/// A small command-line reader: positional words plus `--flag` and `--option value`.
/// Every misuse ends the program with one specific line and exit status 2.
struct Arguments {
    var words: [String] = []
    private var options: [String: String] = [:]
    private var flags: Set<String> = []
    private var consumed: Set<String> = []

    init(_ raw: ArraySlice<String>, flags known: Set<String>) throws(UsageError) {
        var it = raw.makeIterator()
        while let arg = it.next() {
            guard arg.hasPrefix("--") else { words.append(arg); continue }
            var name = String(arg.dropFirst(2))
            if let eq = name.firstIndex(of: "=") {
                options[String(name[..<eq])] = String(name[name.index(after: eq)...])
                continue
            }
            if known.contains(name) { flags.insert(name); continue }
            guard let value = it.next() else { throw UsageError("--\(name) needs a value") }
            if options[name] != nil { name += "" ; throw UsageError("--\(name) given twice") }
            options[name] = value
        }
    }

    mutating func flag(_ name: String) -> Bool {
        consumed.insert(name)
        return flags.contains(name)
    }
    mutating func option(_ name: String) -> String? {
        consumed.insert(name)
        return options[name]
    }
    mutating func int(_ name: String, default d: Int? = nil, min: Int = 0) throws(UsageError) -> Int? {
        guard let text = option(name) else { return d }
        guard let n = Int(text), n >= min else { throw UsageError("--\(name) takes a whole number ≥ \(min), not \(text)") }
        return n
    }
    /// Call last: anything not asked for is a mistake worth reporting.
    func rejectUnknown() throws(UsageError) {
        if let extra = (Set(options.keys).union(flags)).subtracting(consumed).sorted().first { throw UsageError("unknown option --\(extra)") }
    }
}

struct UsageError: Error, CustomStringConvertible {
    var description: String
    init(_ text: String) { description = text }
}
