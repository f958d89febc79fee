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

/// Why a command stopped before corrald answered it. Despite the name (kept: every command
/// throws it), it carries the exit status: 2 a usage error, 3 corrald could not be reached.
struct UsageError: Error, CustomStringConvertible {
    var description: String
    var exitStatus: Int32 = ExitStatus.usage
    init(_ text: String) { description = text }

    /// corrald did not answer: not running, wrong socket, no permission, or too slow.
    static func unreachable(_ text: String, socket: String) -> UsageError {
        var error = UsageError("\(text)\n  check `systemctl status corrald` on this host, or point at its socket with --socket PATH or CORRAL_SOCKET (now \(socket))")
        error.exitStatus = ExitStatus.unreachable
        return error
    }
}

/// The CLI's exit statuses (Docs/operating.md, corral(8)).
enum ExitStatus {
    /// Done; or, with --what-if, the plan was printed.
    static let ok: Int32 = 0
    /// corrald refused the request (nothing was changed), or --wait saw it fail or time out.
    static let failed: Int32 = 1
    /// The command line is wrong; nothing was sent.
    static let usage: Int32 = 2
    /// corrald could not be reached or did not answer; nothing is known to have changed.
    static let unreachable: Int32 = 3
}
