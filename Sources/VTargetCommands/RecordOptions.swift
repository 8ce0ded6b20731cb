import ArgumentParser

/// `run --record DIR`, `--bundle-on-failure DIR` and their flags, as
/// ArgumentParser reads them; `RecordSettings` does the recording.
struct RecordOptions: ParsableArguments {
    @Option(name: .customLong("record"), help: "Record the run (QEMU record/replay) and write a bundle (.vtb) into DIR, whatever the outcome.")
    var recordDirectory: String?

    @Option(name: .customLong("bundle-on-failure"),
            help: "Record the run; write a bundle into DIR only when it fails (default: $VTARGET_BUNDLE_ON_FAILURE, else off).")
    var failureDirectory: String?

    @Flag(name: .customLong("no-bundle-on-failure"), help: "Do not record, even with VTARGET_BUNDLE_ON_FAILURE set.")
    var noBundleOnFailure = false

    @Flag(name: .customLong("include-images"), help: "Put firmware and images into the bundle whatever their size (else over 64 MiB they go in as their sha256).")
    var includeImages = false

    var settings: RecordSettings {
        RecordSettings(recordDirectory: recordDirectory, failureDirectory: failureDirectory,
                       noBundleOnFailure: noBundleOnFailure, includeImages: includeImages)
    }

    func validate() throws { try settings.validate() }
}
