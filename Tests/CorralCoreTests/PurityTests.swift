import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing

/// CorralCore must be pure and deterministic (DESIGN §1): no Foundation, no clock, no randomness,
/// so every node and the simulator compute the same thing from the same inputs.
@Suite struct PurityTests {
    /// Words that mean a clock, randomness, the environment or hash-seed dependent values.
    /// (`.random` also catches `Int.random(in:)` and `SystemRandomNumberGenerator` uses;
    /// `.shuffle` catches `shuffled()`, which draws from the system generator.)
    static let forbidden = ["import Foundation", "Date(", ".random", "SystemRandomNumberGenerator", ".shuffle",
                            "DispatchTime", "ProcessInfo", "ContinuousClock", "SuspendingClock", "hashValue", "canImport"]

    /// An import statement: `import X`, `@testable import X`, `public import X`, `import struct X.Y`…
    static var importStatement: some RegexComponent { #/^\s*(@[A-Za-z_]+(\([^)]*\))?\s+)*((public|package|internal|fileprivate|private)\s+)?import\s/# }

    static var coreDirectory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent()   // Tests/CorralCoreTests
            .deletingLastPathComponent().deletingLastPathComponent()  // the package
            .appendingPathComponent("Sources/CorralCore")
    }

    static func coreFiles() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: coreDirectory.path)
            .filter { $0.hasSuffix(".swift") }.sorted()
            .map { coreDirectory.appendingPathComponent($0).path }
    }

    @Test func coreHasNoClockRandomnessOrFoundation() throws {
        let files = try Self.coreFiles()
        #expect(files.count >= 10, "found only \(files) in \(Self.coreDirectory.path)")
        var hits: [String] = []
        for path in files {
            let file = URL(fileURLWithPath: path).lastPathComponent
            let text = try String(contentsOfFile: path, encoding: .utf8)
            for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                for word in Self.forbidden where line.contains(word) { hits.append("\(file):\(n + 1): \(word)") }
            }
        }
        #expect(hits.isEmpty, "CorralCore must stay pure:\n\(hits.joined(separator: "\n"))")
    }

    /// The core imports nothing at all: the standard library comes without an import.
    @Test func coreImportsNothing() throws {
        var imports: [String] = []
        for path in try Self.coreFiles() {
            let text = try String(contentsOfFile: path, encoding: .utf8)
            for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            where line.firstMatch(of: Self.importStatement) != nil {
                imports.append("\(URL(fileURLWithPath: path).lastPathComponent):\(n + 1): \(line)")
            }
        }
        #expect(imports.isEmpty, "CorralCore imports nothing (stdlib only):\n\(imports.joined(separator: "\n"))")
        #expect("@testable import Foundation".firstMatch(of: Self.importStatement) != nil)
        #expect("public import Glibc".firstMatch(of: Self.importStatement) != nil)
        #expect("// import Foundation would be wrong".firstMatch(of: Self.importStatement) == nil)
    }

    /// The compiler's word for it: the core's sources typecheck as one module with a resource
    /// directory that holds nothing but Swift.swiftmodule (and the stdlib's own C shims and
    /// clang's builtin headers, which Swift.swiftmodule needs) and an empty SDK. Foundation,
    /// Glibc, Dispatch, Synchronization and even the implicitly imported _Concurrency (clocks,
    /// Task.sleep) are then no such module; a file that imports or uses one fails here.
    /// The mode is checked first: a probe importing Foundation must fail in it, and a probe
    /// using only the stdlib must pass.
    @Test(.enabled(if: StdlibOnlyCompiler.supported, "the stdlib-only resource directory is laid out for Linux"))
    func coreTypechecksWithOnlyTheStandardLibrary() throws {
        let compiler = try StdlibOnlyCompiler()
        defer { compiler.remove() }

        let probe = try compiler.write("probe.swift", "import Foundation\nlet now = Date()\n")
        let refused = try compiler.typecheck([probe])
        #expect(refused.status != 0 && refused.output.contains("no such module 'Foundation'"),
                "the stdlib-only mode must refuse Foundation, but: \(refused.status) \(refused.output)")
        let plain = try compiler.write("plain.swift", "public struct Probe: Sendable { public var n = [1, 2].map { $0 * 2 } }\n")
        let accepted = try compiler.typecheck([plain])
        #expect(accepted.status == 0, "the stdlib-only mode must accept the stdlib: \(accepted.output)")

        let core = try compiler.typecheck(try Self.coreFiles(), moduleName: "CorralCore")
        #expect(core.status == 0, "CorralCore must typecheck with the standard library alone:\n\(core.output)")
    }
}

/// `swiftc -typecheck` where only the standard library can be imported.
struct StdlibOnlyCompiler {
    static var supported: Bool {
        #if os(Linux)
        true
        #else
        false
        #endif
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    let swiftc: String
    let scratch: String
    var resourceDirectory: String { scratch + "/resource" }
    var emptySDK: String { scratch + "/sdk" }

    /// Finds swiftc ($SWIFTC, else on $PATH), asks it for its resource directory, and builds the
    /// restricted copy (symbolic links) in a fresh scratch directory.
    init() throws {
        let environment = ProcessInfo.processInfo.environment
        let candidates = [environment["SWIFTC"]].compactMap { $0 }
            + (environment["PATH"] ?? "").split(separator: ":").map { "\($0)/swiftc" } + ["/usr/bin/swiftc"]
        guard let swiftc = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw Failure(description: "no swiftc in $SWIFTC or $PATH")
        }
        self.swiftc = swiftc
        let info = try Self.run(swiftc, ["-print-target-info"])
        guard info.status == 0,
              let json = try? JSONSerialization.jsonObject(with: Data(info.output.utf8)) as? [String: Any],
              let paths = json["paths"] as? [String: Any], let real = paths["runtimeResourcePath"] as? String
        else { throw Failure(description: "swiftc -print-target-info: \(info.output)") }

        var template = Array("/tmp/corral-purity-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else { throw Failure(description: "mkdtemp failed") }
        scratch = String(cString: created)
        let fm = FileManager.default
        do {
            try fm.createDirectory(atPath: resourceDirectory + "/linux", withIntermediateDirectories: true)
            try fm.createDirectory(atPath: emptySDK, withIntermediateDirectories: true)
            let resolve = { (path: String) in URL(fileURLWithPath: path).resolvingSymlinksInPath().path }
            try fm.createSymbolicLink(atPath: resourceDirectory + "/linux/Swift.swiftmodule",
                                      withDestinationPath: resolve(real + "/linux/Swift.swiftmodule"))
            try fm.createSymbolicLink(atPath: resourceDirectory + "/shims", withDestinationPath: resolve(real + "/shims"))
            try fm.createSymbolicLink(atPath: resourceDirectory + "/clang", withDestinationPath: resolve(real + "/clang"))
        } catch {
            remove()
            throw error
        }
    }

    func remove() { try? FileManager.default.removeItem(atPath: scratch) }

    func write(_ name: String, _ text: String) throws -> String {
        let path = scratch + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func typecheck(_ files: [String], moduleName: String = "Probe") throws -> (status: Int32, output: String) {
        try Self.run(swiftc, ["-typecheck", "-parse-as-library", "-swift-version", "6", "-module-name", moduleName,
                              "-resource-dir", resourceDirectory, "-sdk", emptySDK,
                              "-Xfrontend", "-disable-implicit-concurrency-module-import",
                              "-Xfrontend", "-disable-implicit-string-processing-module-import"] + files)
    }

    /// Runs to completion within `timeoutSeconds` (else killed, and an error); stdout and stderr together.
    static func run(_ executable: String, _ arguments: [String], timeoutSeconds: Double = 120) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        try process.run()
        let output = OutputBox()
        let drained = DispatchSemaphore(value: 0)
        let handle = pipe.fileHandleForReading
        DispatchQueue.global().async {
            output.data = handle.readDataToEndOfFile()
            drained.signal()
        }
        if exited.wait(timeout: .now() + timeoutSeconds) == .timedOut {
            kill(process.processIdentifier, SIGKILL)
            exited.wait()
            throw Failure(description: "\(executable) \(arguments.joined(separator: " ")) ran longer than \(timeoutSeconds) s; killed")
        }
        drained.wait()
        return (process.terminationStatus, String(decoding: output.data, as: UTF8.self))
    }

    private final class OutputBox: @unchecked Sendable {
        var data = Data()   // written by the reader before `drained` is signalled, read after
    }
}
