import Glibc

/// Crash-safe persistence of the agent's single state blob.
///
/// `save` writes `state.tmp`, fsyncs it, renames it over `state.bin` and fsyncs
/// the directory, so after a crash or power loss `state.bin` holds either the
/// old or the new blob, never a mix. The blob is wrapped in a `WireFrame`
/// (kind 0x53 "S") so disk corruption is reported rather than silently loaded.
public struct StateFileStore: Sendable {
    /// Frame kind marking a state blob ("S"), so an unrelated frame is not mistaken for state.
    static let frameKind: UInt8 = 0x53

    /// Directory holding the state file; created with mode 0700 on first save.
    public let directory: String
    /// Full path of the committed state file.
    public let statePath: String
    private let temporaryPath: String

    public init(directory: String) {
        self.directory = directory
        statePath = directory + "/state.bin"
        temporaryPath = directory + "/state.tmp"
    }

    /// Durably replaces the stored blob with `bytes`.
    public func save(_ bytes: [UInt8]) throws(StateFileError) {
        guard bytes.count <= WireFrame.maximumPayloadLength else {
            throw .tooLarge(bytes: bytes.count, limit: WireFrame.maximumPayloadLength)
        }
        do {
            try POSIXSupport.makeDirectories(directory, mode: 0o700)
        } catch {
            throw .io(path: directory, operation: "create directory", errno: error.code)
        }
        try writeAndSync(WireFrame.encode(kind: Self.frameKind, payload: bytes))
        guard rename(temporaryPath, statePath) == 0 else {
            throw .io(path: temporaryPath, operation: "rename into place", errno: errno)
        }
        try syncDirectory()
    }

    /// Returns the stored blob, or nil if nothing was ever saved.
    public func load() throws(StateFileError) -> [UInt8]? {
        let file = open(statePath, O_RDONLY | O_CLOEXEC)
        if file < 0 {
            if errno == ENOENT { return nil }
            throw .io(path: statePath, operation: "open", errno: errno)
        }
        defer { close(file) }
        let largestValidFile = WireFrame.maximumPayloadLength + WireFrame.overhead
        let contents = try readAll(file, stoppingAfter: largestValidFile)
        guard contents.count <= largestValidFile else {
            throw .corrupt(path: statePath, reason: "file is larger than the largest valid state frame (\(largestValidFile) bytes)")
        }
        let frame: (kind: UInt8, payload: [UInt8])
        do {
            frame = try WireFrame.decode(contents)
        } catch {
            throw .corrupt(path: statePath, reason: error.description)
        }
        guard frame.kind == Self.frameKind else {
            throw .corrupt(path: statePath, reason: "frame kind \(frame.kind) is not the state-file kind \(Self.frameKind)")
        }
        return frame.payload
    }

    private func writeAndSync(_ frame: [UInt8]) throws(StateFileError) {
        let file = open(temporaryPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard file >= 0 else { throw .io(path: temporaryPath, operation: "create", errno: errno) }
        do {
            try POSIXSupport.writeAll(frame, to: file)
        } catch {
            close(file)
            throw .io(path: temporaryPath, operation: "write", errno: error.code)
        }
        guard fsync(file) == 0 else {
            let code = errno
            close(file)
            throw .io(path: temporaryPath, operation: "fsync", errno: code)
        }
        guard close(file) == 0 else { throw .io(path: temporaryPath, operation: "close", errno: errno) }
    }

    /// Makes the rename itself durable; without it the directory entry may still point at the old file after a crash.
    private func syncDirectory() throws(StateFileError) {
        let handle = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard handle >= 0 else { throw .io(path: directory, operation: "open directory", errno: errno) }
        defer { close(handle) }
        guard fsync(handle) == 0 else { throw .io(path: directory, operation: "fsync directory", errno: errno) }
    }

    /// Reads to end of file, or stops once more than `limit` bytes arrived so garbage cannot exhaust memory.
    private func readAll(_ file: Int32, stoppingAfter limit: Int) throws(StateFileError) -> [UInt8] {
        var contents: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while contents.count <= limit {
            let count = chunk.withUnsafeMutableBytes { read(file, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .io(path: statePath, operation: "read", errno: errno)
            }
            if count == 0 { break }
            contents += chunk[0..<count]
        }
        return contents
    }
}

/// Why the state file could not be saved or loaded.
public enum StateFileError: Error, Equatable, CustomStringConvertible {
    /// The file exists but is not a valid state frame; `reason` says what is wrong with it.
    case corrupt(path: String, reason: String)
    /// A system call failed; `operation` names the step.
    case io(path: String, operation: String, errno: Int32)
    /// The blob exceeds what a frame may carry.
    case tooLarge(bytes: Int, limit: Int)

    public var description: String {
        switch self {
        case .corrupt(let path, let reason):
            "state file \(path) is corrupt: \(reason)"
        case .io(let path, let operation, let code):
            "cannot \(operation) \(path): \(POSIXSupport.describe(errno: code)) (errno \(code))"
        case .tooLarge(let bytes, let limit):
            "state blob of \(bytes) bytes exceeds the \(limit)-byte limit"
        }
    }
}
