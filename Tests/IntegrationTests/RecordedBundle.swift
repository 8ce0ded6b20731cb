import Foundation
import ReplayFormat
import Testing

/// The one bundle a recorded run left in a directory: its path, and, once
/// `extract`ed with `vtarget bundle extract`, where it went and its manifest.
struct RecordedBundle {
    let path: String

    /// Exactly one `.vtb` in `directory`, or the test stops.
    static func only(in directory: String) throws -> RecordedBundle {
        let made = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".vtb") }
        try #require(made.count == 1, "\(made)")
        return RecordedBundle(path: directory + "/" + made[0])
    }

    /// Unpacks it into `work` through the CLI and reads its manifest.
    func extract(to work: String, runtime: String) throws -> BundleManifest {
        let ex = try vt(["bundle", "extract", path, "-C", work], runtime: runtime)
        #expect(ex.code == 0, "\(ex.stderr)")
        return try BundleManifest.decode(Array(try Data(contentsOf: URL(fileURLWithPath: work + "/manifest.json"))))
    }
}
