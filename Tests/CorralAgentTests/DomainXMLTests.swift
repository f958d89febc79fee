import CorralCore
import Testing
@testable import CorralAgent

@Suite("DomainXML")
struct DomainXMLTests {
    @Test func disklessGuest() {
        let xml = DomainXML.xml(for: VMSpec(name: "web", memoryMiB: 128, vcpus: 1))
        #expect(xml == """
            <domain type='qemu'>
              <name>web</name>
              <uuid>285b5aa6-4889-5bcf-a09c-16e492c20780</uuid>
              <memory unit='MiB'>128</memory>
              <vcpu>1</vcpu>
              <os>
                <type arch='x86_64' machine='pc'>hvm</type>
              </os>
              <devices>
                <serial type='file'>
                  <source path='/var/lib/libvirt/qemu/web.serial.log'/>
                </serial>
                <memballoon model='none'/>
              </devices>
            </domain>

            """)
    }

    /// A qcow2 disk from a volume is opened as qcow2: the format is told, never probed.
    @Test func qcow2DiskKeepsItsFormat() {
        var spec = VMSpec(name: "db", memoryMiB: 512, disks: ["/csv/root", "/csv/data"])
        spec.diskFormats = [.qcow2, .raw]
        let xml = DomainXML.xml(for: spec)
        #expect(xml.contains("<driver name='qemu' type='qcow2' cache='none'/>\n      <source file='/csv/root'/>"))
        #expect(xml.contains("<driver name='qemu' type='raw' cache='none'/>\n      <source file='/csv/data'/>"))
    }

    @Test func guestWithTwoDisks() {
        let xml = DomainXML.xml(for: VMSpec(name: "db", memoryMiB: 512, vcpus: 2,
                                            disks: ["/shared/db-root.img", "/shared/db-data.img"]))
        #expect(xml == """
            <domain type='qemu'>
              <name>db</name>
              <uuid>288a6918-855a-5403-9e05-98fe0c4bae9a</uuid>
              <memory unit='MiB'>512</memory>
              <vcpu>2</vcpu>
              <os>
                <type arch='x86_64' machine='pc'>hvm</type>
              </os>
              <devices>
                <disk type='file' device='disk'>
                  <driver name='qemu' type='raw' cache='none'/>
                  <source file='/shared/db-root.img'/>
                  <target dev='vda' bus='virtio'/>
                </disk>
                <disk type='file' device='disk'>
                  <driver name='qemu' type='raw' cache='none'/>
                  <source file='/shared/db-data.img'/>
                  <target dev='vdb' bus='virtio'/>
                </disk>
                <serial type='file'>
                  <source path='/var/lib/libvirt/qemu/db.serial.log'/>
                </serial>
                <memballoon model='none'/>
              </devices>
            </domain>

            """)
    }

    @Test func escapesNamesAndPaths() {
        let xml = DomainXML.xml(for: VMSpec(name: "a<b>&'c\"", memoryMiB: 64, disks: ["/shared/x&y'z.img"]))
        #expect(xml.contains("<name>a&lt;b&gt;&amp;&apos;c&quot;</name>"))
        #expect(xml.contains("<source file='/shared/x&amp;y&apos;z.img'/>"))
        #expect(xml.contains("<source path='/var/lib/libvirt/qemu/a&lt;b&gt;&amp;&apos;c&quot;.serial.log'/>"))
        #expect(!xml.contains("x&y"))
    }

    /// Expected values from Python: uuid.uuid5(uuid.UUID("65ea7a5c-22df-59d4-93b2-304baac8a4c2"), name).
    @Test(arguments: [
        ("web", "285b5aa6-4889-5bcf-a09c-16e492c20780"),
        ("db", "288a6918-855a-5403-9e05-98fe0c4bae9a"),
        ("a", "2eee5e73-0aa5-527f-b694-74ec068c2780"),
        ("vm-01", "ab7a74c4-57ba-5103-aa24-40777f9be253"),
        // 16 namespace bytes + 39, 40, 48 and 64 name bytes: around SHA-1's padding boundaries.
        (String(repeating: "y", count: 39), "9f1d4be6-e054-5d9d-b7f9-99d2375fa7b8"),
        (String(repeating: "y", count: 40), "2bcf76c4-37f6-535f-b1e2-08cf3a547cf6"),
        (String(repeating: "y", count: 48), "264e5d02-f138-5d86-a147-2018c1044c13"),
        (String(repeating: "x", count: 64), "4b2eaa69-5dc7-53c7-824e-7811aa9211b1"),
    ])
    func uuidIsTheNameBasedVersion5UUID(name: String, expected: String) {
        #expect(DomainXML.uuid(forName: name) == expected)
    }

    @Test func uuidIsStableAndDistinct() {
        let names = (0..<500).map { "vm\($0)" }
        #expect(names.map(DomainXML.uuid(forName:)) == names.map(DomainXML.uuid(forName:)))
        #expect(Set(names.map(DomainXML.uuid(forName:))).count == names.count)
    }

    @Test func diskTargetsFollowLibvirtNaming() {
        #expect([0, 1, 25, 26, 27, 51, 52, 701, 702].map(DomainXML.diskTarget) ==
                ["vda", "vdb", "vdz", "vdaa", "vdab", "vdaz", "vdba", "vdzz", "vdaaa"])
    }
}
