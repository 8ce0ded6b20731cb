import Foundation
import MachineCatalog
import Synchronization
import TestSupport
import Testing

/// A board's start parses its own profile (and its bases'), not all of
/// them; what needs all (an alias, an unknown name, the names) still sees all.
@Suite struct ProfileShelfTests {
    static let dir = repoRoot + "/machines"

    /// The files a shelf read, in order (`*` for all of them).
    final class Reads: Sendable {
        let names = Mutex<[String]>([])
        func withLock<T>(_ body: (inout [String]) -> T) -> T { names.withLock { body(&$0) } }
    }

    /// A shelf over the built-in profiles that counts the files it reads.
    static func shelf(_ reads: Reads) -> MachineCatalog {
        MachineCatalog(shelf: ProfileShelf(
            file: { name in
                guard let data = FileManager.default.contents(atPath: dir + "/" + name + ".yaml") else { return nil }
                reads.withLock { $0.append(name) }
                return (dir + "/" + name + ".yaml", [UInt8](data))
            },
            allFiles: {
                let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".yaml") }.sorted()
                reads.withLock { $0.append("*") }
                return names.map { (dir + "/" + $0, [UInt8](FileManager.default.contents(atPath: dir + "/" + $0)!)) }
            }))
    }

    @Test func theSeedsBoardReadsItsOwnFileAndItsBase() throws {
        let reads = Reads()
        let catalog = Self.shelf(reads)
        let lazy = try #require(catalog.lookup("stm32-p103"))
        let eager = try #require(try builtInCatalog().lookup("stm32-p103"))
        #expect(String(describing: lazy) == String(describing: eager), "the same profile, stm32vldiscovery's fields under its own")
        #expect(lazy.qemuMachine == "stm32vldiscovery" && lazy.warning?.contains("not in upstream QEMU") == true)
        #expect(reads.withLock { $0 } == ["stm32-p103", "stm32vldiscovery"])
        _ = catalog.lookup("stm32-p103")
        #expect(reads.withLock { $0 }.count == 2, "parsed once")
    }

    @Test func anAliasAnUnknownNameAndTheNamesSeeEveryProfile() throws {
        let reads = Reads()
        let catalog = Self.shelf(reads)
        let eager = try builtInCatalog()
        #expect(catalog.lookup("stm32f4")?.name == "netduinoplus2")
        #expect(catalog.lookup("virt", architecture: Architecture.aarch64)?.name == eager.lookup("virt", architecture: Architecture.aarch64)?.name)
        #expect(catalog.lookup("no-such-board") == nil)
        #expect(catalog.allNames == eager.allNames && catalog.names == eager.names)
        #expect(reads.withLock { $0.filter { $0 == "*" } }.count == 1, "all parsed once")
    }

    /// A file named as a board but holding another is not taken for it.
    @Test func aFileHoldingAnotherProfileIsNotTakenForIt() {
        let text = Array("name: other\narchitectures: [arm]\nqemu: {binary: qemu-system-arm, machine: x}\ncpu: {default: cortex-m3}\nmemory: {fixed: 8Ki}\n".utf8)
        let catalog = MachineCatalog(shelf: ProfileShelf(file: { _ in ("/m/board.yaml", text) }, allFiles: { [("/m/board.yaml", text)] }))
        #expect(catalog.lookup("board") == nil)
        #expect(catalog.lookup("other")?.qemuMachine == "x")
    }
}
