#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import CANProtocol
import Endpoints
import HostOS
import InstanceContract
import MachineCatalog
import NIOCore
import QEMULaunch
import Synchronization

/// What a recorded (or replayed) run keeps while it happens, for each
/// board (by target name): each serial device's exact bytes with the
/// monotonic time they arrived, the input each got with the time it went
/// to QEMU, every frame each CAN device passed on, and, once QEMU has
/// stopped, copies of what each board's QEMU left in its directory (the
/// replay log, the firmware it ran), before the run's directories are removed.
public final class RunCapture: Sendable {
    public struct Chunk: Sendable, Equatable {
        /// Seconds since the capture began (monotonic).
        public var seconds: Double
        public var bytes: [UInt8]
    }

    /// A board's serial device.
    public struct Source: Sendable, Hashable, Comparable {
        public var target: String
        public var device: String

        public init(target: String, device: String) {
            self.target = target
            self.device = device
        }

        public static func < (a: Source, b: Source) -> Bool { (a.target, a.device) < (b.target, b.device) }
    }

    /// One frame a CAN device of a board passed on (`CANBusLink` says when).
    public struct CANEvent: Sendable, Equatable {
        /// Seconds since the capture began (monotonic).
        public var seconds: Double
        /// The board, its CAN device and the bus it is on.
        public var target: String
        public var device: String
        public var bus: String
        /// The board sent it (else the bus delivered it to the board).
        public var sent: Bool
        public var id: UInt32
        public var extended: Bool
        public var remote: Bool
        public var dlc: Int
        public var data: [UInt8]
    }

    /// What one board's QEMU left, copied under `staging + "/" + prefix`.
    public struct Board: Sendable {
        public var name = ""
        /// Where its files are, relative to `staging` and in the bundle:
        /// "" for a run of one board (the layout of every bundle before
        /// several), `boards/NAME/` for each of several.
        public var prefix = ""
        /// The copy of QEMU's replay log (`prefix + "replay.bin"`), when it wrote one.
        public var replayLog: String?
        /// The copy of the scratch image holding the start snapshot (`rrsnapshot`).
        public var snapshotImage: String?
        /// Copies of the regular files QEMU had in its directory (firmware), by name, under `prefix + "qemu/"`.
        public var qemuFiles: [String] = []
        public var arguments: [String] = []
        public var binary = ""
        public var profile = ""
    }

    /// What the run left: filled in by `collect`, read after `run` returns.
    /// The fields outside `boards` are the run's, and for one board, its.
    public struct Collected: Sendable {
        /// Every board, in the run's order.
        public var boards: [Board] = []
        /// The first board's machine profile (the manifest's instance names it).
        public var profile: String { boards.first?.profile ?? "" }
        /// The first board's name.
        public var name = ""
        public var namespace = ""
        public var exitCode: Int32 = 1
        public var reason = ""
        public var phase = ""
    }

    private struct State {
        var chunks: [Source: [Chunk]] = [:]
        var inputs: [Source: [Chunk]] = [:]
        var frames: [CANEvent] = []
        var qmp: [QMPLine] = []
        var total = 0
        var collected = Collected()
        var stopped = false
    }

    private let state = Mutex(State())
    private let start = monotonicSeconds()
    /// The wall clock (CLOCK_REALTIME, microseconds since the epoch) when
    /// the capture began: second 0 of every `seconds` here.
    public let wallStartMicroseconds: Int64 = {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }()
    /// Where `collect` copies files to: the caller's private directory.
    public let staging: String
    /// Stop the run once this many serial bytes arrived (`replay --until OFFSET`).
    public let stopAfterBytes: Int?

    public init(staging: String, stopAfterBytes: Int? = nil) {
        self.staging = staging
        self.stopAfterBytes = stopAfterBytes
    }

    public var collected: Collected { state.withLock { $0.collected } }

    /// Every device's output so far, in order, by board and device.
    public var output: [Source: [UInt8]] {
        state.withLock { s in s.chunks.mapValues { $0.flatMap(\.bytes) } }
    }

    /// Board `target`'s output so far, by device.
    public func output(of target: String) -> [String: [UInt8]] {
        Dictionary(uniqueKeysWithValues: output.filter { $0.key.target == target }.map { ($0.key.device, $0.value) })
    }

    public var chunks: [Source: [Chunk]] { state.withLock { $0.chunks } }

    /// Each serial device's input, in the pieces and at the times it went to QEMU.
    public var inputs: [Source: [Chunk]] { state.withLock { $0.inputs } }

    /// Every CAN device's frames, in the order they were passed on.
    public var frames: [CANEvent] { state.withLock { $0.frames } }

    /// From the hub (`SerialHub.observeInput`): `bytes` just went to the UART.
    func serialInput(target: String, device: String, bytes: [UInt8]) {
        let now = monotonicSeconds() - start
        state.withLock { $0.inputs[Source(target: target, device: device), default: []].append(Chunk(seconds: now, bytes: bytes)) }
    }

    /// One line of a board's QMP conversation through its proxy.
    public struct QMPLine: Sendable, Equatable {
        /// Seconds since the capture began (monotonic).
        public var seconds: Double
        public var target: String
        /// The proxy's number of the client; nil for an event.
        public var client: Int?
        public var direction: QMPTranscriptDirection
        public var json: [UInt8]
    }

    /// Every board's QMP lines, in the order the proxy passed them on.
    public var qmp: [QMPLine] { state.withLock { $0.qmp } }

    /// The proxy's transcript hook for one board (`QMPProxy`'s `transcript`):
    /// called on its event loop, so it only appends.
    func qmpTranscript(target: String) -> QMPTranscript {
        let start = self.start
        return { [weak self] client, direction, line, at in
            let line = QMPLine(seconds: Double(at.uptimeNanoseconds) / 1e9 - start, target: target, client: client, direction: direction,
                               json: line.getBytes(at: line.readerIndex, length: line.readableBytes) ?? [])
            self?.state.withLock { $0.qmp.append(line) }
        }
    }

    /// From the link (`CANBusLink.observeFrames`).
    func canFrame(target: String, device: String, bus: String, frame: CANFrame, direction: CANBusLink.Direction) {
        let e = CANEvent(seconds: monotonicSeconds() - start, target: target, device: device, bus: bus, sent: direction == .sent, id: frame.id,
                         extended: frame.extended, remote: frame.remote, dlc: frame.dlc, data: frame.data)
        state.withLock { $0.frames.append(e) }
    }

    /// From the run's serial callback. With `stopAfterBytes` reached, the run
    /// is ended the way Ctrl-C ends it (the session's own signal handling
    /// stops QEMU and removes everything); the bytes past it are kept but
    /// not compared.
    func serial(target: String, device: String, bytes: [UInt8]) {
        let now = monotonicSeconds() - start
        let stopNow = state.withLock { s -> Bool in
            s.chunks[Source(target: target, device: device), default: []].append(Chunk(seconds: now, bytes: bytes))
            s.total += bytes.count
            guard let limit = stopAfterBytes, s.total >= limit, !s.stopped else { return false }
            s.stopped = true
            return true
        }
        if stopNow { kill(getpid(), SIGINT) }
    }

    /// After QEMU stopped, before its directory goes: copies each board's
    /// replay log and QEMU's regular files into `staging` (under
    /// `boards/NAME/` when there are several), and notes the verdict.
    func collect(_ prepared: [PreparedTarget], code: Int32, outcome: ShimStatus) {
        guard let first = prepared.first else { return }
        var c = Collected()
        c.name = first.1.targetName
        c.namespace = first.0.namespace
        c.exitCode = code
        c.reason = outcome.message ?? outcome.phase.rawValue
        c.phase = outcome.phase.rawValue
        let several = prepared.count > 1
        for (_, plan, _) in prepared {
            c.boards.append(Self.collect(plan, into: staging, prefix: several ? "boards/\(plan.targetName)/" : ""))
        }
        state.withLock { $0.collected = c }
    }

    private static func collect(_ plan: LaunchPlan, into staging: String, prefix: String) -> Board {
        var b = Board()
        b.name = plan.targetName
        b.prefix = prefix
        b.arguments = plan.arguments
        b.binary = plan.binary
        b.profile = plan.profile
        let fm = FileManager.default
        let base = staging + "/" + prefix
        try? fm.createDirectory(atPath: base, withIntermediateDirectories: true)
        let qemuDir = plan.workingDirectory
        if let log = plan.recordReplay?.logFile, fm.fileExists(atPath: log) {
            let copy = base + "replay.bin"
            try? fm.removeItem(atPath: copy)
            if (try? fm.copyItem(atPath: log, toPath: copy)) != nil { b.replayLog = copy }
        }
        if plan.recordReplay?.snapshot != nil, let image = plan.snapshotImage {
            let copy = base + "snapshot.qcow2"
            try? fm.removeItem(atPath: copy)
            if (try? fm.copyItem(atPath: image, toPath: copy)) != nil { b.snapshotImage = copy }
        }
        let filesDir = base + "qemu"
        try? fm.createDirectory(atPath: filesDir, withIntermediateDirectories: true)
        for name in ((try? fm.contentsOfDirectory(atPath: qemuDir)) ?? []).sorted() {
            let path = qemuDir + "/" + name
            var st = stat()
            guard lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG, path != plan.recordReplay?.logFile, path != plan.snapshotImage else { continue }
            if (try? fm.copyItem(atPath: path, toPath: filesDir + "/" + name)) != nil { b.qemuFiles.append(name) }
        }
        return b
    }
}

extension TargetProcess {
    /// How far apart recorded input bytes go to the UART (`PacedInput` says
    /// why): `VTARGET_RECORD_INPUT_GAP` (e.g. `2ms` for firmware with a fast
    /// tick of its own), else 150 ms, enough for a guest asleep without timers.
    static func recordedInputGap(environment: [String: String]) -> TimeAmount {
        guard let text = environment[recordedInputGapVariable], let seconds = Quantity.parseDuration(text), seconds >= 0 else {
            return PacedInput.defaultGap
        }
        return .nanoseconds(Int64(seconds * 1e9))
    }

    public static let recordedInputGapVariable = "VTARGET_RECORD_INPUT_GAP"
}

extension RunSession {
    /// Whether QEMU can take the recording's start snapshot (`rrsnapshot`):
    /// a VM snapshot needs every writable drive in qcow2, and a writable raw
    /// drive makes QEMU refuse to start ("does not support snapshots").
    /// Such a board is recorded without it: a replay from the start is
    /// exact all the same, but gdb cannot run it backwards. Not an overlay
    /// over a kept base instead: the run's writes must reach the drive's own
    /// file, which a test or the user may read afterwards.
    public static func startSnapshotPossible(_ drives: [ResolvedDrive]) -> Bool {
        drives.allSatisfy { $0.drive.readOnly || $0.format != .raw }
    }

    /// A recorded run's command that ended well is taken as ended once the
    /// input it typed (and the CAN frames it sent) reached the guest (paced, it may still be queued), as
    /// it would have without recording: the guest's answers still show and
    /// count. At most `limit` seconds; a `--timeout` still applies.
    static func drainRecordedInput(_ targets: [TargetProcess], limit: Double = 60) async {
        await withTaskGroup(of: Void.self) { g in
            g.addTask {
                for t in targets {
                    for h in t.hubs { await h.inputDrained() }
                    for l in t.canLinks { await l.inputDrained() }
                }
            }
            g.addTask { try? await Task.sleep(for: .seconds(limit)) }
            await g.next()
            g.cancelAll()
        }
    }
}
