import CorralSimulator
import Foundation

/// The checked-in scenario files and their expected timelines.
enum GoldenFiles {
    /// Scenario names (file names without `.json`), from the test bundle.
    static var names: [String] {
        guard let dir = Bundle.module.url(forResource: "Golden", withExtension: nil),
              let files = try? FileManager.default.contentsOfDirectory(atPath: dir.path) else { return [] }
        return files.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
    }

    static func scenario(_ name: String) throws -> Scenario {
        guard let url = Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Golden") else {
            throw Missing(file: "\(name).json")
        }
        return try ScenarioParser.parse(Data(contentsOf: url))
    }

    static func expected(_ name: String) throws -> String {
        guard let url = Bundle.module.url(forResource: name, withExtension: "txt", subdirectory: "Golden") else {
            throw Missing(file: "\(name).txt (run with CORRAL_BLESS=1 to create it)")
        }
        return try String(contentsOf: url, encoding: .utf8)
    }

    /// `CORRAL_BLESS=1 swift test …` rewrites the expected timelines in the source tree.
    static var blessing: Bool { ProcessInfo.processInfo.environment["CORRAL_BLESS"] == "1" }

    /// The source directory (not the copy in the test bundle), for blessing.
    static func sourceURL(_ file: String) -> URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Golden").appendingPathComponent(file)
    }

    struct Missing: Error, CustomStringConvertible {
        var file: String
        var description: String { "missing golden file \(file)" }
    }
}

/// A mismatch report a person can act on: the first differing line with context, and where
/// the whole actual text was written for `diff -u`.
func describeMismatch(name: String, expected: String, actual: String) -> String {
    let e = expected.split(separator: "\n", omittingEmptySubsequences: false)
    let a = actual.split(separator: "\n", omittingEmptySubsequences: false)
    let first = (0..<min(e.count, a.count)).first { e[$0] != a[$0] } ?? min(e.count, a.count)
    let context = max(0, first - 3)
    var lines = ["timeline of \(name) differs from Golden/\(name).txt at line \(first + 1):"]
    for i in context..<first { lines.append("    \(e[i])") }
    lines.append("  - \(first < e.count ? String(e[first]) : "<end of file>")")
    lines.append("  + \(first < a.count ? String(a[first]) : "<end of output>")")
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("corral-golden-\(name).txt")
    if (try? actual.write(to: out, atomically: true, encoding: .utf8)) != nil {
        lines.append("full output: diff -u \(GoldenFiles.sourceURL("\(name).txt").path) \(out.path)")
    }
    lines.append("if the new timeline is right, re-bless: CORRAL_BLESS=1 swift test -c release --filter GoldenScenarioTests")
    return lines.joined(separator: "\n")
}
