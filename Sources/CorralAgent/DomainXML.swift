import CorralCore

/// The libvirt guest definition of a `VMSpec`, kept minimal for libvirt 9 / QEMU 7.2:
/// a TCG guest (`type='qemu'`: this host's /dev/kvm cannot run Linux guests), `pc` machine,
/// raw disks on a shared directory, no graphics and no balloon (nothing to resize, and one
/// device fewer to migrate). Every node builds the same XML for the same spec, down to the UUID,
/// which libvirt requires to match on both ends of a migration.
public enum DomainXML {
    /// Namespace of the mark a staged guest carries until it is resumed, so that an agent that
    /// restarts can tell a staged guest (never ran; discard it) from a guest paused later.
    public static let stagedNamespace = "urn:x-corral:staged"

    public static func xml(for spec: VMSpec, staged: Bool = false) -> String {
        let name = escaped(spec.name)
        var lines = [
            "<domain type='qemu'>",
            "  <name>\(name)</name>",
            "  <uuid>\(uuid(forName: spec.name))</uuid>",
        ]
        if staged { lines += ["  <metadata><corral:staged xmlns:corral='\(stagedNamespace)'/></metadata>"] }
        lines += [
            "  <memory unit='MiB'>\(spec.memoryMiB)</memory>",
            "  <vcpu>\(spec.vcpus)</vcpu>",
            "  <os>",
            "    <type arch='x86_64' machine='pc'>hvm</type>",
            "  </os>",
            "  <devices>",
        ]
        for (index, path) in spec.disks.enumerated() {
            lines += [
                "    <disk type='file' device='disk'>",
                "      <driver name='qemu' type='\(spec.diskFormat(index).rawValue)' cache='none'/>",
                "      <source file='\(escaped(path))'/>",
                "      <target dev='\(diskTarget(index))' bus='virtio'/>",
                "    </disk>",
            ]
        }
        // The serial log lives in the driver's own state directory, which exists from the first
        // libvirtd start; /var/log/libvirt/qemu appears only with a node's first guest, and
        // libvirt creates this file before that, on the destination of a migration too.
        lines += [
            "    <serial type='file'>",
            "      <source path='/var/lib/libvirt/qemu/\(name).serial.log'/>",
            "    </serial>",
            "    <memballoon model='none'/>",
            "  </devices>",
            "</domain>",
        ]
        return lines.joined(separator: "\n") + "\n"
    }

    /// A name-based UUID (RFC 4122 version 5, SHA-1) in Corral's own namespace: the same name
    /// gives the same UUID on every node, different names give different UUIDs.
    public static func uuid(forName name: String) -> String {
        var bytes = Array(SHA1.digest(namespace + Array(name.utf8)).prefix(16))
        bytes[6] = bytes[6] & 0x0F | 0x50
        bytes[8] = bytes[8] & 0x3F | 0x80
        let digits = Array("0123456789abcdef")
        let hex = bytes.map { String([digits[Int($0 >> 4)], digits[Int($0 & 0x0F)]]) }
        return [0..<4, 4..<6, 6..<8, 8..<10, 10..<16].map { hex[$0].joined() }.joined(separator: "-")
    }

    /// uuid5(NAMESPACE_DNS, "vm.corral") = 65ea7a5c-22df-59d4-93b2-304baac8a4c2.
    private static let namespace: [UInt8] = [0x65, 0xea, 0x7a, 0x5c, 0x22, 0xdf, 0x59, 0xd4,
                                             0x93, 0xb2, 0x30, 0x4b, 0xaa, 0xc8, 0xa4, 0xc2]

    /// libvirt's disk names: vda…vdz, then vdaa, vdab, …
    static func diskTarget(_ index: Int) -> String {
        var letters = ""
        var rest = index
        repeat {
            letters = String(UnicodeScalar(UInt8(ascii: "a") + UInt8(rest % 26))) + letters
            rest = rest / 26 - 1
        } while rest >= 0
        return "vd" + letters
    }

    static func escaped(_ text: String) -> String {
        var result = ""
        for character in text {
            switch character {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "'": result += "&apos;"
            case "\"": result += "&quot;"
            default: result.append(character)
            }
        }
        return result
    }
}

/// SHA-1 (FIPS 180-4), only for name-based UUIDs: no crypto library is linked here, and a
/// UUID needs no collision resistance against an attacker.
private enum SHA1 {
    static func digest(_ message: [UInt8]) -> [UInt8] {
        var h: [UInt32] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0]
        var data = message + [0x80]
        while data.count % 64 != 56 { data.append(0) }
        let bits = UInt64(message.count) * 8
        data += (0..<8).reversed().map { UInt8(truncatingIfNeeded: bits >> (UInt64($0) * 8)) }
        for chunk in stride(from: 0, to: data.count, by: 64) {
            var w = (0..<16).map { i in data[(chunk + 4 * i)..<(chunk + 4 * i + 4)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } }
            for i in 16..<80 { w.append(rotate(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1)) }
            var (a, b, c, d, e) = (h[0], h[1], h[2], h[3], h[4])
            for i in 0..<80 {
                let (f, k): (UInt32, UInt32) = switch i {
                case 0..<20: ((b & c) | (~b & d), 0x5A82_7999)
                case 20..<40: (b ^ c ^ d, 0x6ED9_EBA1)
                case 40..<60: ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC)
                default: (b ^ c ^ d, 0xCA62_C1D6)
                }
                let t = rotate(a, 5) &+ f &+ e &+ k &+ w[i]
                (e, d, c, b, a) = (d, c, rotate(b, 30), a, t)
            }
            for (i, value) in [a, b, c, d, e].enumerated() { h[i] &+= value }
        }
        return h.flatMap { word in (0..<4).reversed().map { UInt8(truncatingIfNeeded: word >> (UInt32($0) * 8)) } }
    }

    private static func rotate(_ x: UInt32, _ n: UInt32) -> UInt32 { x << n | x >> (32 - n) }
}
